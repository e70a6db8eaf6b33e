// Chat between two people in two browsers: a room, then a private conversation; user
// text is rendered as text (no XSS); the layout holds from phone to desktop width.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { WAIT, done, eventually, inRoom, join, say, screenshot, setup, signIn, texts } from "./harness.mjs";

const env = setup(before, after);

test("alice and bob chat in a room and privately, each message shown once", async () => {
  const { browser, server } = env;
  const [alice, bob] = await inRoom(env, ["alice", "bob"], "e2e-chat");
  await alice.page.locator('#members .member[data-user="bob"]').waitFor({ timeout: WAIT });

  await say(alice.page, "hi bob");
  await eventually("bob has alice's chat", async () => (await texts(bob.page)).length === 1);
  await say(bob.page, "hi alice");
  for (const { page } of [alice, bob]) {
    await eventually("both chats shown", async () => (await texts(page)).length === 2);
    assert.deepEqual(await texts(page), ["hi bob", "hi alice"]);
  }
  const first = bob.page.locator("#messages .message").first();
  assert.match(await first.locator(".sender").textContent(), /alice/i);
  assert.notEqual((await first.locator(".time").textContent()).trim(), "");

  // A newcomer gets the room's history on join, and everyone sees them arrive.
  const carol = await signIn(browser, server, "carol");
  await join(carol.page, "e2e-chat");
  await eventually("carol has the history", async () => (await texts(carol.page)).length === 2);
  await alice.page.locator('#members .member[data-user="carol"]').waitFor({ timeout: WAIT });
  await carol.context.close();
  await eventually("carol left the member list", async () =>
    (await alice.page.locator('#members .member[data-user="carol"]').count()) === 0);

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
  await done([alice, bob]);
});

test("a private conversation comes back after a reload, in order, each message once", async () => {
  // New users: both directions number their ids from 1, so they share ids.
  const [dora, eve] = await inRoom(env, ["dora", "eve"], "e2e-private-history");
  const open = async (page, who) => {
    await page.locator(`#members .member[data-user="${who}"] button`).click({ timeout: WAIT });
    await eventually(`the conversation with ${who} is open`, async () =>
      (await page.locator("#private-with").textContent()) === who);
  };
  const privateTexts = (page) => texts(page, "#private-messages");
  const write = async (page, text) => {
    await page.fill("#private-input", text);
    await page.click("#private-send");
  };
  await open(dora.page, "eve");
  await open(eve.page, "dora");
  const said = [];
  for (const [who, text] of [[dora, "one"], [eve, "two"], [dora, "three"], [eve, "four"]]) {
    await write(who.page, text);
    said.push(text);
    for (const { page } of [dora, eve]) {
      await eventually(`"${text}" on both pages`, async () => (await privateTexts(page)).length === said.length);
    }
  }
  for (const { page } of [dora, eve]) assert.deepEqual(await privateTexts(page), said);

  // Eve reloads: the page starts with no conversation at all. Dora writes once more before
  // Eve opens it again, so the live message and the stored history must merge.
  await eve.page.reload();
  await eve.page.locator("#conn-state[data-state=open]").waitFor({ timeout: WAIT });
  await join(eve.page, "e2e-private-history");
  await open(dora.page, "eve");
  await write(dora.page, "five");
  await eve.page.locator('#conversations .conversation[data-user="dora"] .badge').waitFor({ timeout: WAIT });
  await open(eve.page, "dora");
  const all = [...said, "five"];
  await eventually("eve has the whole conversation", async () => (await privateTexts(eve.page)).length >= all.length);
  assert.deepEqual(await privateTexts(eve.page), all);
  const mine = await eve.page.locator("#private-messages .message.mine .text").allTextContents();
  assert.deepEqual(mine, ["two", "four"], "eve's own messages are shown as hers");

  // Dora too, after a reload of hers.
  await dora.page.reload();
  await dora.page.locator("#conn-state[data-state=open]").waitFor({ timeout: WAIT });
  await join(dora.page, "e2e-private-history");
  await open(dora.page, "eve");
  await eventually("dora has the whole conversation", async () => (await privateTexts(dora.page)).length >= all.length);
  assert.deepEqual(await privateTexts(dora.page), all);
  await done([dora, eve]);
});

test("text that looks like HTML is shown as text and runs nothing, wherever it appears", async () => {
  const { server } = env;
  const [alice, bob] = await inRoom(env, ["alice", "bob"], "e2e-xss");
  const attack = (n) => `<img src=x onerror="window.__xss = ${n}"><script>window.__xss = ${n}</script>`;
  await say(alice.page, attack(1));
  await alice.page.click('#members .member[data-user="bob"]');
  await alice.page.fill("#private-input", attack(2));
  await alice.page.click("#private-send");
  await server.api("POST", "/api/notify", { userId: "bob", title: attack(3), content: attack(4) });
  await server.api("POST", "/api/notify_all", { title: attack(5), content: attack(6) });

  await eventually("the chat arrives", async () => (await texts(bob.page)).includes(attack(1)));
  await bob.page.click('#members .member[data-user="alice"]');
  await eventually("the private message arrives", async () =>
    (await texts(bob.page, "#private-messages")).includes(attack(2)));
  await bob.page.locator("#banners .banner").first().waitFor({ timeout: WAIT });
  await bob.page.click("#bell");
  const notification = bob.page.locator("#notifications .notification").first();
  await notification.waitFor({ timeout: WAIT });
  assert.equal((await notification.locator(".title").textContent()).trim(), attack(3));
  assert.equal((await notification.locator(".content").textContent()).trim(), attack(4));
  assert.match(await bob.page.locator("#banners").textContent(), /window\.__xss = 6/);
  for (const { page } of [alice, bob]) {
    assert.equal(await page.locator("#app img, #app script").count(), 0);
    assert.equal(await page.evaluate(() => window.__xss), undefined);
  }
  await done([alice, bob]);
});

test("every view fits a phone and a desktop without sideways scrolling", async () => {
  const { browser, server } = env;
  for (const viewport of [{ width: 360, height: 740 }, { width: 1280, height: 800 }]) {
    const carol = await signIn(browser, server, "carol", { role: "admin", viewport });
    await join(carol.page, `e2e-layout-${viewport.width}`);
    await say(carol.page, "a fairly long message ".repeat(12));
    await eventually("the chat arrives", async () => (await texts(carol.page)).length === 1);
    for (const selector of ["#chat-input", "#chat-send", "#members", "#conn-state"]) {
      assert.ok(await carol.page.locator(selector).isVisible(), `${selector} at ${viewport.width} px`);
    }
    if (viewport.width < 500) await screenshot(carol.page, "phone");
    for (const view of ["chat", "notifications", "live", "admin"]) {
      await carol.page.click(`#tab-${view}`);
      await carol.page.locator(`#view-${view}`).waitFor({ timeout: WAIT });
      const overflow = await carol.page.evaluate(
        () => document.documentElement.scrollWidth - document.documentElement.clientWidth);
      assert.ok(overflow <= 0, `${view} at ${viewport.width} px: ${overflow} px of sideways scroll`);
    }
    await done([carol]);
  }
});
