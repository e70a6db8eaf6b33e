// A big room's member list: the joiner's user_list holds only the first users by id (here
// 2, the server's ROOMCAST_USER_LIST_LIMIT) and the true count; "Show more" pages the rest
// with the SDK's `members`, each person once.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { WAIT, done, eventually, inRoom, join, setup, signIn } from "./harness.mjs";

const env = setup(before, after, { ROOMCAST_USER_LIST_LIMIT: "2" });

const shown = (page) => page.locator("#members .member").evaluateAll((items) => items.map((li) => li.dataset.user));

test("a big room shows its count at once and the rest of its members on Show more", async () => {
  const { browser, server } = env;
  const room = "e2e-big";
  const early = await inRoom(env, ["ann", "bo", "cyd", "dee"], room);
  const zoe = await signIn(browser, server, "zoe");
  await join(zoe.page, room);
  // The first two by id, and zoe herself; the count is everyone's.
  await eventually("zoe sees the first page", async () => (await shown(zoe.page)).length === 3);
  assert.deepEqual((await shown(zoe.page)).sort(), ["ann", "bo", "zoe"]);
  assert.equal(await zoe.page.locator("#member-count").textContent(), "5");
  const more = zoe.page.locator("#members-more");
  await more.waitFor({ state: "visible", timeout: WAIT });

  await more.click();
  await eventually("every member is shown", async () => (await shown(zoe.page)).length === 5);
  assert.deepEqual((await shown(zoe.page)).sort(), ["ann", "bo", "cyd", "dee", "zoe"]);
  await more.waitFor({ state: "hidden", timeout: WAIT });
  assert.equal(await zoe.page.locator("#member-count").textContent(), "5");

  // Small rooms show no button: everyone came in the user_list.
  await join(early[0].page, "e2e-small");
  await join(zoe.page, "e2e-small");
  await eventually("both in the small room", async () => (await shown(zoe.page)).length === 2);
  assert.equal(await more.isHidden(), true);
  await done([...early, zoe]);
});
