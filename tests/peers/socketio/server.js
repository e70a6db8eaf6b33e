// Benchmark peer: a Socket.IO rooms server (tests/peers/README.md). With REDIS_URL set it
// uses the Redis adapter, so several processes on different ports share rooms.
"use strict";

const { createServer } = require("node:http");
const { Server } = require("socket.io");
const jwt = require("jsonwebtoken");

const PORT = Number(process.env.PORT || 9003);
const SECRET = process.env.JWT_SECRET || "roomcast-dev-secret-DO-NOT-USE-IN-PRODUCTION";
const REDIS_URL = process.env.REDIS_URL;

/** The token's claims when it is a valid HS256 JWT with a string `sub` and an `exp`. */
function verify(token) {
  if (typeof token !== "string" || token === "") return null;
  try {
    const claims = jwt.verify(token, SECRET, { algorithms: ["HS256"] });
    if (typeof claims.sub !== "string" || typeof claims.exp !== "number") return null;
    return claims;
  } catch {
    return null;
  }
}

const httpServer = createServer();
const io = new Server(httpServer, {
  transports: ["websocket"],
  perMessageDeflate: false,
  serveClient: false,
});

io.use((socket, next) => {
  const claims = verify(socket.handshake.auth?.token ?? socket.handshake.query?.token);
  if (!claims) return next(new Error("unauthorized"));
  socket.data.userId = claims.sub;
  next();
});

io.on("connection", (socket) => {
  socket.on("join", (room, ack) => {
    if (typeof room !== "string") return;
    socket.join(room);
    if (typeof ack === "function") ack({ count: io.sockets.adapter.rooms.get(room)?.size ?? 0 });
  });
  socket.on("leave", (room, ack) => {
    if (typeof room !== "string") return;
    socket.leave(room);
    if (typeof ack === "function") ack({ room });
  });
  socket.on("publish", (msg) => {
    if (msg === null || typeof msg !== "object" || typeof msg.room !== "string") return;
    io.to(msg.room).emit("message", { room: msg.room, data: msg.data });
  });
});

async function main() {
  if (REDIS_URL) {
    const { createClient } = require("redis");
    const { createAdapter } = require("@socket.io/redis-adapter");
    const pubClient = createClient({ url: REDIS_URL });
    const subClient = pubClient.duplicate();
    pubClient.on("error", (err) => console.error("redis pub:", err.message));
    subClient.on("error", (err) => console.error("redis sub:", err.message));
    await Promise.all([pubClient.connect(), subClient.connect()]);
    io.adapter(createAdapter(pubClient, subClient));
  }
  httpServer.listen(PORT, "127.0.0.1", () => {
    const mode = REDIS_URL ? `Redis adapter on ${REDIS_URL}` : "in-memory adapter";
    console.log(`roomcast-peer-socketio listening on ws://127.0.0.1:${PORT}/socket.io/ (${mode})`);
  });
}

for (const signal of ["SIGINT", "SIGTERM"]) {
  process.on(signal, () => process.exit(0));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
