// Benchmark peer: a plain Node `ws` rooms server speaking the peer protocol of
// tests/peers/README.md. One process, no clustering, no logging on the hot path.
"use strict";

const http = require("node:http");
const { WebSocketServer } = require("ws");
const jwt = require("jsonwebtoken");

const PORT = Number(process.env.PORT || 9001);
const SECRET = process.env.JWT_SECRET || "roomcast-dev-secret-DO-NOT-USE-IN-PRODUCTION";

/** @type {Map<string, Set<import("ws").WebSocket>>} */
const rooms = new Map();

const PONG = JSON.stringify({ type: "pong" });
const error = (message) => JSON.stringify({ type: "error", message });
const ERR_JSON = error('expected a JSON object with a string "type"');
const ERR_TYPE = error("unknown type");
const ERR_ROOM = error("missing room");
const ERR_DATA = error("missing data");
const ERR_BINARY = error("expected a text frame");

/** The token's claims when it is a valid HS256 JWT with a string `sub` and an `exp`. */
function verify(token) {
  if (!token) return null;
  try {
    const claims = jwt.verify(token, SECRET, { algorithms: ["HS256"] });
    if (typeof claims.sub !== "string" || typeof claims.exp !== "number") return null;
    return claims;
  } catch {
    return null;
  }
}

function leave(ws, room) {
  const members = rooms.get(room);
  if (!members) return;
  members.delete(ws);
  if (members.size === 0) rooms.delete(room);
}

function onMessage(ws, raw, isBinary) {
  if (isBinary) return ws.send(ERR_BINARY);
  let msg;
  try {
    msg = JSON.parse(raw.toString());
  } catch {
    return ws.send(ERR_JSON);
  }
  if (msg === null || typeof msg !== "object" || typeof msg.type !== "string") {
    return ws.send(ERR_JSON);
  }
  switch (msg.type) {
    case "publish": {
      if (typeof msg.room !== "string") return ws.send(ERR_ROOM);
      if (!("data" in msg)) return ws.send(ERR_DATA);
      const members = rooms.get(msg.room);
      if (!members) return;
      const out = JSON.stringify({ type: "message", room: msg.room, data: msg.data });
      for (const member of members) member.send(out);
      return;
    }
    case "join": {
      if (typeof msg.room !== "string") return ws.send(ERR_ROOM);
      let members = rooms.get(msg.room);
      if (!members) {
        members = new Set();
        rooms.set(msg.room, members);
      }
      members.add(ws);
      ws.rooms.add(msg.room);
      return ws.send(JSON.stringify({ type: "joined", room: msg.room, count: members.size }));
    }
    case "leave": {
      if (typeof msg.room !== "string") return ws.send(ERR_ROOM);
      leave(ws, msg.room);
      ws.rooms.delete(msg.room);
      return ws.send(JSON.stringify({ type: "left", room: msg.room }));
    }
    case "ping":
      return ws.send(PONG);
    default:
      return ws.send(ERR_TYPE);
  }
}

const server = http.createServer((req, res) => {
  res.writeHead(426, { "Content-Type": "text/plain" });
  res.end("WebSocket only\n");
});
const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: 1 << 20 });

function onSocketError() {
  this.destroy();
}

server.on("upgrade", (req, socket, head) => {
  socket.on("error", onSocketError);
  const url = new URL(req.url, "http://localhost");
  const claims = verify(url.searchParams.get("token"));
  if (!claims) {
    socket.end("HTTP/1.1 401 Unauthorized\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
    return;
  }
  socket.removeListener("error", onSocketError);
  wss.handleUpgrade(req, socket, head, (ws) => {
    ws.userId = claims.sub;
    wss.emit("connection", ws, req);
  });
});

wss.on("connection", (ws) => {
  ws.rooms = new Set();
  ws.on("message", (raw, isBinary) => onMessage(ws, raw, isBinary));
  ws.on("close", () => {
    for (const room of ws.rooms) leave(ws, room);
    ws.rooms.clear();
  });
  ws.on("error", () => {});
});

server.listen(PORT, "127.0.0.1", () => {
  console.log(`roomcast-peer-node-ws listening on ws://127.0.0.1:${PORT}/ws`);
});

for (const signal of ["SIGINT", "SIGTERM"]) {
  process.on(signal, () => process.exit(0));
}
