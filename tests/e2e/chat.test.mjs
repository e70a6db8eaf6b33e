// Chat between two people in two browsers: a room, then a private conversation; user
// text is rendered as text (no XSS); the layout holds from phone to desktop width.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { Server, WAIT, eventually, launchBrowser, screenshot, signIn } from "./harness.mjs";

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

/** The texts of the messages shown in `list`. */
function texts(page, list = "#messages") {
  return page.locator(`${list} .message .text`).allTextContents();
}

test("alice and bob chat in a room and privately, each message shown once", async () => {
  const alice = await signIn(browser, server, "alice");
  const bob = await signIn(browser, server, "bob");
  await join(alice.page, "e2e-chat");
  await join(bob.page, "e2e-chat");
  await alice.page.locator('#members .member[data-user="bob"]').waitFor({ timeout: WAIT });

  await say(alice.page, "hi bob");
  await say(bob.page, "hi alice");
  for (const { page } of [alice, bob]) {
    await eventually("both chats shown", async () => (await texts(page)).length === 2);
    assert.deepEqual(await texts(page), ["hi bob", "hi alice"]);
  }
  const first = bob.page.locator("#messages .message").first();
  assert.match(await first.locator(".sender").textContent(), /alice/i);
  assert.notEqual((await first.locator(".time").textContent()).trim(), "");

  // Private: bob writes to alice from the member list; alice finds it in her conversation.
  await bob.page.click('#members .member[data-user="alice"]');
  await eventually("bob's conversation is with alice", async () =>
    /alice/.test(await bob.page.locator("#private-with").textContent()));
  await bob.page.fill("#private-input", "just between us");
  await bob.page.click("#private-send");
  await eventually("bob sees his private message", async () =>
    (await texts(bob.page, "#private-messages")).includes("just between us"));
  await alice.page.click('#members .member[data-user="bob"]');
  await eventually("alice sees bob's private message", async () =>
    (await texts(alice.page, "#private-messages")).includes("just between us"));
  assert.deepEqual(await texts(alice.page, "#private-messages"), ["just between us"]);
  assert.deepEqual(await texts(alice.page), ["hi bob", "hi alice"], "the room is untouched");
  await screenshot(bob.page, "chat");

  assert.deepEqual(alice.problems, []);
  assert.deepEqual(bob.problems, []);
  await alice.context.close();
  await bob.context.close();
});

test("a chat that looks like HTML is shown as text and runs nothing", async () => {
  const alice = await signIn(browser, server, "alice");
  const bob = await signIn(browser, server, "bob");
  await join(alice.page, "e2e-xss");
  await join(bob.page, "e2e-xss");
  const attack = `<img src=x onerror="window.__xss = 1"><script>window.__xss = 2</script>`;
  await say(alice.page, attack);
  for (const { page } of [alice, bob]) {
    await eventually("the chat arrives", async () => (await texts(page)).includes(attack));
    assert.equal(await page.locator("#messages img, #messages script").count(), 0);
    assert.equal(await page.evaluate(() => window.__xss), undefined);
  }
  assert.deepEqual([...alice.problems, ...bob.problems], []);
  await alice.context.close();
  await bob.context.close();
});

test("the layout fits a phone and a desktop without sideways scrolling", async () => {
  for (const viewport of [{ width: 360, height: 740 }, { width: 1280, height: 800 }]) {
    const carol = await signIn(browser, server, "carol", { viewport });
    await join(carol.page, `e2e-layout-${viewport.width}`);
    await say(carol.page, "a fairly long message ".repeat(12));
    await eventually("the chat arrives", async () => (await texts(carol.page)).length === 1);
    const overflow = await carol.page.evaluate(
      () => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    assert.ok(overflow <= 0, `${viewport.width} px wide: ${overflow} px of sideways scroll`);
    for (const selector of ["#chat-input", "#chat-send", "#members", "#conn-state"]) {
      assert.ok(await carol.page.locator(selector).isVisible(), `${selector} at ${viewport.width} px`);
    }
    if (viewport.width < 500) await screenshot(carol.page, "phone");
    assert.deepEqual(carol.problems, []);
    await carol.context.close();
  }
});
