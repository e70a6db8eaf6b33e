// Live data from the demo feed: the ticker charts only the symbols the user picked, and
// the score board follows the games.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { WAIT, done, eventually, screenshot, setup, signIn } from "./harness.mjs";

const env = setup(before, after);

/** The symbols in the ticker's legend, with their last prices. */
async function legend(page) {
  return page.locator("#ticker-legend .series").evaluateAll((series) =>
    series.map((s) => [s.dataset.key, s.querySelector(".value")?.textContent.trim()]));
}

const keys = async (page) => (await legend(page)).map(([key]) => key).sort();

async function pick(page, symbols) {
  for (const box of await page.locator("input[name=symbol]").all()) {
    const wanted = symbols.includes(await box.getAttribute("value"));
    if ((await box.isChecked()) !== wanted) await box.click();
  }
}

test("the ticker charts the chosen symbols only, and follows a new choice", async () => {
  const { browser, server } = env;
  const heidi = await signIn(browser, server, "heidi");
  await heidi.page.click("#tab-live");
  await pick(heidi.page, ["AAPL", "TSLA"]);
  await eventually("both chosen symbols have prices", async () =>
    JSON.stringify(await keys(heidi.page)) === JSON.stringify(["AAPL", "TSLA"]));
  const before = Object.fromEntries(await legend(heidi.page));
  await eventually("prices move", async () => {
    const now = Object.fromEntries(await legend(heidi.page));
    return now.AAPL !== before.AAPL || now.TSLA !== before.TSLA;
  });
  assert.deepEqual(await keys(heidi.page), ["AAPL", "TSLA"], "nothing else was charted");
  assert.ok(await heidi.page.locator("#ticker-chart").isVisible());
  await screenshot(heidi.page, "live", { settleMs: 15_000 });

  await pick(heidi.page, ["MSFT"]);
  await eventually("only the new choice is charted", async () =>
    JSON.stringify(await keys(heidi.page)) === JSON.stringify(["MSFT"]));

  // The choice is the user's, kept by the server: a reload comes back with it.
  await heidi.page.reload();
  await heidi.page.locator("#conn-state[data-state=open]").waitFor({ timeout: WAIT });
  await heidi.page.click("#tab-live");
  await eventually("the stored choice is charted again", async () =>
    JSON.stringify(await keys(heidi.page)) === JSON.stringify(["MSFT"]));
  const checked = await heidi.page.locator("input[name=symbol]:checked").evaluateAll((boxes) => boxes.map((b) => b.value));
  assert.deepEqual(checked, ["MSFT"]);
  await done([heidi]);
});

test("the score board shows every game and updates", async () => {
  const { browser, server } = env;
  const ivan = await signIn(browser, server, "ivan");
  await ivan.page.click("#tab-live");
  for (const game of ["game-1", "game-2", "game-3"]) {
    await ivan.page.locator(`#scores .score[data-game="${game}"]`).waitFor({ timeout: WAIT });
  }
  const board = () => ivan.page.locator("#scores").textContent();
  const first = await board();
  await eventually("the clock runs", async () => (await board()) !== first);
  await done([ivan]);
});
