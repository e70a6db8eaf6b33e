// The package as npm ships it (client-wasm/pkg/bundler), imported the way a bundler
// resolves it: `import { RoomcastClient } from "roomcast-client"` with the .wasm as an ES
// module. Node runs that natively with --experimental-wasm-modules (and provides the
// browser's WebSocket with --experimental-websocket), which scripts/e2e-test.sh passes.

import assert from "node:assert/strict";
import path from "node:path";
import { after, before, test } from "node:test";

import { Server, eventually } from "./harness.mjs";

const packageDir = path.resolve(import.meta.dirname, "../../client-wasm/pkg/bundler");
let server;
let RoomcastClient;
before(async () => {
  server = await Server.start();
  const manifest = (await import(path.join(packageDir, "package.json"), { with: { type: "json" } })).default;
  assert.equal(manifest.name, "roomcast-client");
  ({ RoomcastClient } = await import(path.join(packageDir, manifest.main)));
});
after(async () => {
  await server?.dispose();
});

async function client(userId) {
  const getToken = async () => {
    const response = await fetch(server.url("/dev/token"), {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ userId }),
    });
    return (await response.json()).token;
  };
  const instance = new RoomcastClient(`ws://127.0.0.1:${server.port}/ws`, { getToken });
  await instance.connect();
  return instance;
}

test("the published package connects, chats, subscribes and reports errors with codes", async () => {
  const alice = await client("alice");
  const bob = await client("bob");
  const chats = [];
  bob.on("chat", (chat) => chats.push(chat));
  assert.equal((await alice.join("pkg-room")).room, "pkg-room");
  await bob.join("pkg-room");
  const sent = await alice.chat("pkg-room", { text: "from the npm package" });
  await eventually("bob has the chat", () => chats.length === 1);
  assert.equal(chats[0].id, sent.id);
  assert.deepEqual(chats[0].message, { text: "from the npm package" });

  const ticks = [];
  bob.on("stock_update", (tick) => ticks.push(tick));
  await bob.subscribe("stocks", ["NVDA"]);
  await eventually("a tick of the chosen symbol", () => ticks.length >= 2);
  assert.deepEqual([...new Set(ticks.flatMap((t) => t.data.map((item) => item.key)))], ["NVDA"]);

  await assert.rejects(alice.chat("not-joined", "x"), (error) => error.code === "not_member");
  await assert.rejects(alice.join(""), (error) => error.code === "bad_request");
  alice.close();
  bob.close();
});
