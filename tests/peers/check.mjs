// End-to-end check of a benchmark peer (tests/peers/README.md).
//
//   node tests/peers/check.mjs --kind json --url ws://127.0.0.1:9001/ws
//   node tests/peers/check.mjs --kind socketio --url ws://127.0.0.1:9003
//   node tests/peers/check.mjs --kind socketio --url ws://127.0.0.1:9003 --url2 ws://127.0.0.1:9004
//   node tests/peers/check.mjs --kind socketio --url ws://127.0.0.1:9003 --heartbeat
//
// --kind json speaks the JSON peer protocol (node-ws, floor); --kind socketio speaks raw
// Engine.IO v4 / Socket.IO v5 over a bare WebSocket, as the load generator does. With
// --url2 (socketio), a subscriber on the second node must get a publish made on the
// first. With --heartbeat (socketio) it also waits out one engine ping interval (25 s)
// and checks the `2` was answered `3` and the session lives on. Expects the room (--room, default "bench") to be empty when it starts.
import { parseArgs } from "node:util";
import WebSocket from "ws";
import jwt from "jsonwebtoken";

const { values: args } = parseArgs({
  options: {
    kind: { type: "string", default: "json" },
    url: { type: "string" },
    url2: { type: "string" },
    room: { type: "string", default: "bench" },
    heartbeat: { type: "boolean", default: false },
    secret: {
      type: "string",
      default: process.env.JWT_SECRET || "roomcast-dev-secret-DO-NOT-USE-IN-PRODUCTION",
    },
  },
});
if (!args.url || !["json", "socketio"].includes(args.kind)) {
  console.error("usage: check.mjs --kind json|socketio --url ws://HOST:PORT[/ws] [--url2 ...]");
  process.exit(2);
}
const ROOM = args.room;
const TIMEOUT = 3000;

const token = (sub, secret = args.secret) =>
  jwt.sign({ sub, exp: Math.floor(Date.now() / 1000) + 3600 }, secret, { algorithm: "HS256" });

let failures = 0;
function ok(what) {
  console.log(`ok   ${what}`);
}
function fail(what) {
  failures += 1;
  console.log(`FAIL ${what}`);
}
function check(cond, what) {
  if (cond) ok(what);
  else fail(what);
}
const deepEqual = (a, b) => JSON.stringify(a) === JSON.stringify(b);

/** A WebSocket whose text frames are queued until a test takes them. */
class Conn {
  constructor(url) {
    this.url = url;
    this.queue = [];
    this.waiters = [];
  }

  /** Resolves once open, or with the HTTP status / error of a refused upgrade. */
  open() {
    return new Promise((resolve) => {
      this.ws = new WebSocket(this.url, { perMessageDeflate: false });
      this.ws.on("open", () => resolve({ open: true }));
      this.ws.on("unexpected-response", (_req, res) => {
        resolve({ open: false, status: res.statusCode });
        res.resume();
        this.ws.terminate();
      });
      this.ws.on("error", (err) => resolve({ open: false, error: err.message }));
      this.ws.on("message", (data, isBinary) => {
        const text = isBinary ? `<binary ${data.length}>` : data.toString();
        if (this.onText && this.onText(text)) return;
        const waiter = this.waiters.shift();
        if (waiter) waiter(text);
        else this.queue.push(text);
      });
      this.ws.on("close", () => {
        for (const waiter of this.waiters.splice(0)) waiter(null);
      });
    });
  }

  send(text) {
    this.ws.send(text);
  }

  /** The next text frame, or null after `ms`. */
  next(ms = TIMEOUT) {
    if (this.queue.length > 0) return Promise.resolve(this.queue.shift());
    return new Promise((resolve) => {
      const waiter = (text) => {
        clearTimeout(timer);
        resolve(text);
      };
      const timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(waiter), 1);
        resolve(null);
      }, ms);
      this.waiters.push(waiter);
    });
  }

  close() {
    this.ws.close();
    return new Promise((resolve) => {
      if (this.ws.readyState === WebSocket.CLOSED) resolve();
      else this.ws.once("close", resolve);
    });
  }
}

const withToken = (url, tok) => `${url}${url.includes("?") ? "&" : "?"}token=${encodeURIComponent(tok)}`;

async function checkJson() {
  const url = args.url;
  const json = async (conn, ms) => {
    const text = await conn.next(ms);
    try {
      return text === null ? null : JSON.parse(text);
    } catch {
      return { unparsable: text };
    }
  };

  for (const [what, u] of [
    ["no token", url],
    ["a token with the wrong secret", withToken(url, token("mallory", "not-the-secret"))],
    ["a garbage token", withToken(url, "not.a.jwt")],
  ]) {
    const res = await new Conn(u).open();
    check(!res.open && res.status === 401, `${what} is refused with 401 (${JSON.stringify(res)})`);
  }

  const a = new Conn(withToken(url, token("alice")));
  const b = new Conn(withToken(url, token("bob")));
  const c = new Conn(withToken(url, token("carol")));
  for (const conn of [a, b, c]) {
    const res = await conn.open();
    if (!res.open) throw new Error(`valid token refused: ${JSON.stringify(res)}`);
  }
  ok("valid tokens are accepted");

  a.send(JSON.stringify({ type: "join", room: ROOM }));
  let got = await json(a);
  check(deepEqual(got, { type: "joined", room: ROOM, count: 1 }), `first join: ${JSON.stringify(got)}`);
  b.send(JSON.stringify({ type: "join", room: ROOM }));
  got = await json(b);
  check(deepEqual(got, { type: "joined", room: ROOM, count: 2 }), `second join: ${JSON.stringify(got)}`);

  a.send(JSON.stringify({ type: "publish", room: ROOM, data: { seq: 1 } }));
  const want1 = { type: "message", room: ROOM, data: { seq: 1 } };
  got = await json(a);
  check(deepEqual(got, want1), `publisher (a member) receives: ${JSON.stringify(got)}`);
  got = await json(b);
  check(deepEqual(got, want1), `other member receives: ${JSON.stringify(got)}`);

  c.send(JSON.stringify({ type: "publish", room: ROOM, data: [2, "two", null] }));
  const want2 = { type: "message", room: ROOM, data: [2, "two", null] };
  const [ga, gb] = [await json(a), await json(b)];
  check(deepEqual(ga, want2) && deepEqual(gb, want2), `a non-member's publish reaches both: ${JSON.stringify(ga)}`);
  got = await json(c, 200);
  check(got === null, `the non-member publisher gets nothing back: ${JSON.stringify(got)}`);

  a.send(JSON.stringify({ type: "ping" }));
  got = await json(a);
  check(deepEqual(got, { type: "pong" }), `ping: ${JSON.stringify(got)}`);

  for (const bad of ["not json", "[1,2]", JSON.stringify({ type: "nope" }), JSON.stringify({ type: "join" })]) {
    a.send(bad);
    got = await json(a);
    check(got?.type === "error" && typeof got.message === "string", `${bad} -> ${JSON.stringify(got)}`);
  }
  a.send(JSON.stringify({ type: "ping" }));
  got = await json(a);
  check(deepEqual(got, { type: "pong" }), "the connection survives errors");

  b.send(JSON.stringify({ type: "leave", room: ROOM }));
  got = await json(b);
  check(deepEqual(got, { type: "left", room: ROOM }), `leave: ${JSON.stringify(got)}`);
  a.send(JSON.stringify({ type: "publish", room: ROOM, data: { seq: 3 } }));
  got = await json(a);
  check(deepEqual(got, { type: "message", room: ROOM, data: { seq: 3 } }), "the remaining member receives");
  got = await json(b, 200);
  check(got === null, `the member who left does not: ${JSON.stringify(got)}`);

  await a.close();
  await new Promise((r) => setTimeout(r, 100));
  c.send(JSON.stringify({ type: "join", room: ROOM }));
  got = await json(c);
  check(deepEqual(got, { type: "joined", room: ROOM, count: 1 }), `a closed connection left its rooms: ${JSON.stringify(got)}`);

  await Promise.all([b.close(), c.close()]);
}

/** A raw Engine.IO v4 / Socket.IO v5 client over a bare WebSocket. */
async function sioConnect(base, tok) {
  const url = `${base.replace(/\/$/, "")}/socket.io/?EIO=4&transport=websocket&token=${encodeURIComponent(tok)}`;
  const conn = new Conn(url);
  conn.pings = 0;
  // The engine's heartbeat: `2` is answered `3`.
  conn.onText = (text) => {
    if (text !== "2") return false;
    conn.pings += 1;
    conn.send("3");
    return true;
  };
  const res = await conn.open();
  if (!res.open) return { conn, res };
  const open = await conn.next();
  const handshake = open?.startsWith("0") ? JSON.parse(open.slice(1)) : null;
  conn.send(`40${JSON.stringify({ token: tok })}`);
  const connect = await conn.next();
  return { conn, res, open, handshake, connect };
}

async function checkSocketio() {
  const url = args.url;

  const bad = await sioConnect(url, token("mallory", "not-the-secret"));
  if (bad.res.open) {
    check(bad.handshake?.sid && bad.handshake.pingInterval === 25000, `engine open packet: ${bad.open}`);
    check(
      bad.connect?.startsWith("44") && JSON.parse(bad.connect.slice(2)).message === "unauthorized",
      `a bad token gets connect_error: ${bad.connect}`,
    );
    await bad.conn.close();
  } else {
    fail(`a bad token should reach the middleware: ${JSON.stringify(bad.res)}`);
  }

  const a = await sioConnect(url, token("alice"));
  const b = await sioConnect(url, token("bob"));
  for (const [name, s] of [["a", a], ["b", b]]) {
    check(s.handshake?.sid && s.handshake.pingInterval === 25000, `${name} engine open: ${s.open}`);
    check(s.connect?.startsWith("40") && JSON.parse(s.connect.slice(2)).sid, `${name} connects: ${s.connect}`);
  }

  a.conn.send(`420${JSON.stringify(["join", ROOM])}`);
  let got = await a.conn.next();
  check(got === '430[{"count":1}]', `first join ack: ${got}`);
  b.conn.send(`421${JSON.stringify(["join", ROOM])}`);
  got = await b.conn.next();
  check(got === '431[{"count":2}]', `second join ack: ${got}`);

  a.conn.send(`42${JSON.stringify(["publish", { room: ROOM, data: { seq: 1 } }])}`);
  const want = `42${JSON.stringify(["message", { room: ROOM, data: { seq: 1 } }])}`;
  const [ga, gb] = [await a.conn.next(), await b.conn.next()];
  check(ga === want, `publisher (a member) receives: ${ga}`);
  check(gb === want, `other member receives: ${gb}`);

  if (args.url2) {
    const s = await sioConnect(args.url2, token("dave"));
    check(s.connect?.startsWith("40"), `connects to the second node: ${s.connect}`);
    s.conn.send(`420${JSON.stringify(["join", ROOM])}`);
    got = await s.conn.next();
    check(got === '430[{"count":1}]', `join ack on the second node counts its own members: ${got}`);
    a.conn.send(`42${JSON.stringify(["publish", { room: ROOM, data: { seq: 2 } }])}`);
    const want2 = `42${JSON.stringify(["message", { room: ROOM, data: { seq: 2 } }])}`;
    got = await s.conn.next();
    check(got === want2, `a subscriber on the second node receives a publish made on the first: ${got}`);
    const [ra, rb] = [await a.conn.next(), await b.conn.next()];
    check(ra === want2 && rb === want2, "the first node's members receive it once each");
    got = await s.conn.next(200);
    check(got === null, `no duplicate on the second node: ${got}`);
    await s.conn.close();
  }

  if (args.heartbeat) {
    const interval = a.handshake?.pingInterval ?? 25000;
    console.log(`...  waiting ${interval + 2000} ms for the engine's ping`);
    await new Promise((r) => setTimeout(r, interval + 2000));
    check(a.conn.pings >= 1 && b.conn.pings >= 1, `engine pings answered: a ${a.conn.pings}, b ${b.conn.pings}`);
    a.conn.send(`42${JSON.stringify(["publish", { room: ROOM, data: { seq: 9 } }])}`);
    got = await b.conn.next();
    check(got === `42${JSON.stringify(["message", { room: ROOM, data: { seq: 9 } }])}`, `still delivering after the heartbeat: ${got}`);
  }

  await Promise.all([a.conn.close(), b.conn.close()]);
}

try {
  if (args.kind === "json") await checkJson();
  else await checkSocketio();
} catch (err) {
  fail(err.stack || String(err));
}
console.log(failures === 0 ? "PASS" : `${failures} FAILED`);
process.exit(failures === 0 ? 0 : 1);
