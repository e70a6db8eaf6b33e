// The e2e harness: a real roomcast server (the debug binary, dev mode, the demo feed, a
// SQLite file in a temp dir so a restart keeps history) serving www/, and headless
// Chromium (Debian's /usr/bin/chromium) driven by playwright-core.

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

import { chromium } from "playwright-core";

const root = path.resolve(import.meta.dirname, "../..");
/** The well-known dev API key (dev mode only). */
export const API_KEY = "roomcast-dev-api-key";
/** How long a UI expectation may take. */
export const WAIT = 10_000;

function freePort() {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
  });
}

/** A roomcast process on a fixed port and store, which can be restarted in place. */
export class Server {
  /** `env`: settings for this server (e.g. `ROOMCAST_USER_LIST_LIMIT`). */
  static async start(env = {}) {
    const server = new Server(await freePort(), mkdtempSync(path.join(tmpdir(), "roomcast-e2e-")));
    server.settings = env;
    await server.launch();
    return server;
  }

  constructor(port, dir) {
    this.port = port;
    this.dir = dir;
    this.process = null;
    this.log = "";
    this.settings = {};
  }

  url(route = "/") {
    return `http://127.0.0.1:${this.port}${route}`;
  }

  async launch() {
    const binary = process.env.ROOMCAST_BIN ?? path.join(root, "target/debug/roomcast");
    const args = [
      "--bind", `127.0.0.1:${this.port}`,
      "--static-dir", path.join(root, "www"),
      "--store", `sqlite://${path.join(this.dir, "e2e.db")}`,
      "--demo",
    ];
    const env = { ...process.env, ROOMCAST_DEV: "1", ROOMCAST_STATS_INTERVAL_MS: "500", ...this.settings };
    const child = spawn(binary, args, { env, stdio: ["ignore", "pipe", "pipe"] });
    child.stdout.on("data", (chunk) => { this.log += chunk; });
    child.stderr.on("data", (chunk) => { this.log += chunk; });
    this.process = child;
    this.exited = new Promise((resolve) => child.once("exit", resolve));
    for (let i = 0; i < 200; i++) {
      if (child.exitCode !== null) break;
      try {
        if ((await fetch(this.url("/healthz"))).ok) return;
      } catch {
        // Not listening yet.
      }
      await sleep(50);
    }
    throw new Error(`roomcast did not start:\n${this.log}`);
  }

  /** SIGTERM: the server closes every socket with 1001 and exits. */
  async stop() {
    if (!this.process) return;
    this.process.kill("SIGTERM");
    await this.exited;
    this.process = null;
  }

  async restart() {
    await this.stop();
    await this.launch();
  }

  async dispose() {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** The HTTP API with the dev key, as an application backend calls it. */
  async api(method, route, body) {
    const response = await fetch(this.url(route), {
      method,
      headers: { authorization: `Bearer ${API_KEY}`, "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const answer = await response.json();
    if (!response.ok) throw new Error(`${method} ${route}: ${response.status} ${JSON.stringify(answer)}`);
    return answer;
  }
}

/** Headless Chromium with the flags this machine's closed network needs. */
export function launchBrowser() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    headless: true,
    args: [
      "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
    ],
  });
}

/**
 * A signed-in page for `user` (`role` user or admin) in its own browser context (its own
 * storage, like another person's browser), or in `context` (another tab of the same one).
 * `problems` collects console errors and warnings and uncaught page errors; `prepare`
 * runs on the page before it loads (e.g. to route its WebSocket).
 */
export async function signIn(browser, server, user, { role = "user", context, viewport, prepare } = {}) {
  const ownContext = context ?? (await browser.newContext({ viewport: viewport ?? { width: 1280, height: 800 } }));
  const page = await ownContext.newPage();
  await prepare?.(page);
  const problems = [];
  page.on("console", (message) => {
    if (message.type() === "error" || message.type() === "warning") problems.push(message.text());
  });
  page.on("pageerror", (error) => problems.push(`uncaught: ${error.message}`));
  await page.goto(server.url(`/?user=${encodeURIComponent(user)}&role=${role}`));
  await page.locator("#conn-state[data-state=open]").waitFor({ timeout: WAIT });
  return { page, context: ownContext, problems };
}

/**
 * Saves a screenshot under $ROOMCAST_SCREENSHOTS (docs/screenshots when refreshing them),
 * after `settleMs` (live charts need a few seconds of data to show anything); a no-op
 * in normal test runs.
 */
export async function screenshot(page, name, { settleMs = 0 } = {}) {
  const dir = process.env.ROOMCAST_SCREENSHOTS;
  if (!dir) return;
  mkdirSync(dir, { recursive: true });
  await sleep(settleMs);
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path: path.join(dir, `${name}.png`) });
}

/** Retries `check` until it returns truthy or WAIT passes; returns its last value. */
export async function eventually(what, check, timeout = WAIT) {
  const deadline = Date.now() + timeout;
  let last;
  while (Date.now() < deadline) {
    last = await check();
    if (last) return last;
    await sleep(100);
  }
  throw new Error(`timed out: ${what} (last: ${JSON.stringify(last)})`);
}

/**
 * Everything that went wrong on a signed-in page: console errors and warnings, uncaught
 * errors, and the errors the app reported to the user (`window.roomcast.errors`), which
 * never reach the console. `allow` filters out expected console lines.
 */
export async function troubles({ page, problems }, allow = /$^/) {
  const reported = await page.evaluate(() => (window.roomcast?.errors ?? []).map((e) => `reported: ${e.code ?? ""} ${e.message}`));
  return [...problems.filter((p) => !allow.test(p)), ...reported];
}

/** Joins `room` from the chat view and selects it. */
export async function join(page, room) {
  await page.fill("#room-input", room);
  await page.click("#room-join");
  await page.locator(`#rooms [data-room="${room}"]`).waitFor({ timeout: WAIT });
  await page.click(`#rooms [data-room="${room}"]`);
}

/** Says `text` in the selected room. */
export async function say(page, text) {
  await page.fill("#chat-input", text);
  await page.click("#chat-send");
}

/** The texts of the messages in `list` (the selected room by default). */
export function texts(page, list = "#messages") {
  return page.locator(`${list} .message .text`).allTextContents();
}

/** Each of `users` signed in, in a browser of their own, and in `room`. */
export async function inRoom({ browser, server }, users, room) {
  const people = [];
  for (const user of users) people.push(await signIn(browser, server, user));
  for (const { page } of people) await join(page, room);
  return people;
}

/** Nothing went wrong on any of these pages (see `troubles`); then their browsers close. */
export async function done(people, allow) {
  for (const who of people) assert.deepEqual(await troubles(who, allow), []);
  for (const who of people) await who.context.close();
}

/** A fresh server (with `settings` in its environment) and browser for a test file, torn down after it. */
export function setup(before, after, settings = {}) {
  const env = {};
  before(async () => {
    env.server = await Server.start(settings);
    env.browser = await launchBrowser();
  });
  after(async () => {
    await env.browser?.close();
    await env.server?.dispose();
  });
  return env;
}
