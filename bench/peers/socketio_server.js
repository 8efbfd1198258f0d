// The system aivo-gw replaces, for bench/run.sh: a plain Socket.IO 4.x server with the same
// echo and room semantics as aivo-gw's default policy (policies/default.lua, plugins/echo.lua,
// plugins/rooms.lua):
//   echo {..}            -> the ack carries the same data (without an ack: an "echo" event)
//   join {room}          -> ack {ok: true, room}
//   room:send {room,msg} -> ack {ok: true}; the other members get room:message {room, from, msg}
// Like the old service it checks an HS256 JWT (auth.token, signed with JWT_SECRET) once per
// connection, and the identity (sub) is the "from" of room messages. No per-message rate limit
// (the benchmark turns the gateway's off too).
//
// With REDIS_URL set it runs as one of several servers through @socket.io/redis-adapter (the
// old service's scale-out, for the cluster row of bench/run.sh): rooms span every server.
//
// usage: node socketio_server.js [PORT]   (0 or none: any free port)
// prints "socketio-server: listening on 127.0.0.1:PORT" on stderr; SIGTERM/SIGINT stop it.
"use strict";
const http = require("node:http");
const crypto = require("node:crypto");
const { Server } = require("socket.io");

const secret = process.env.JWT_SECRET || "";

function b64urlJSON(s) {
  return JSON.parse(Buffer.from(s, "base64url").toString("utf8"));
}

// the claims of a valid HS256 token, or null
function verify(token) {
  if (typeof token !== "string") return null;
  const parts = token.split(".");
  if (parts.length !== 3) return null;
  try {
    const header = b64urlJSON(parts[0]);
    if (header.alg !== "HS256") return null;
    const want = crypto.createHmac("sha256", secret).update(parts[0] + "." + parts[1]).digest();
    const got = Buffer.from(parts[2], "base64url");
    if (got.length !== want.length || !crypto.timingSafeEqual(got, want)) return null;
    const claims = b64urlJSON(parts[1]);
    const now = Date.now() / 1000;
    if (typeof claims.exp === "number" && claims.exp < now) return null;
    if (typeof claims.nbf === "number" && claims.nbf > now) return null;
    return claims;
  } catch {
    return null;
  }
}

const httpServer = http.createServer();
const io = new Server(httpServer, { serveClient: false, cors: { origin: "*" } });

io.use((socket, next) => {
  if (!secret) return next(); // no JWT_SECRET: no auth
  const claims = verify(socket.handshake.auth && socket.handshake.auth.token);
  if (!claims || typeof claims.sub !== "string" || claims.sub === "") {
    const err = new Error("unauthorized");
    err.data = { reason: "token_invalid" };
    return next(err);
  }
  socket.data.user = claims.sub;
  next();
});

function roomOf(data) {
  const room = data && typeof data === "object" ? data.room : undefined;
  return typeof room === "string" && room !== "" && room.length <= 200 ? room : null;
}

function refuse(ack, socket, code, message) {
  const error = { code, message };
  if (typeof ack === "function") ack({ ok: false, error });
  else socket.emit("error", error);
}

io.on("connection", (socket) => {
  socket.on("echo", (data, ack) => {
    if (typeof ack === "function") ack(data);
    else socket.emit("echo", data);
  });
  socket.on("join", (data, ack) => {
    const room = roomOf(data);
    if (!room) return refuse(ack, socket, "bad_request", "data.room must be a non-empty string");
    socket.join(room);
    if (typeof ack === "function") ack({ ok: true, room });
  });
  socket.on("leave", (data, ack) => {
    const room = roomOf(data);
    if (!room) return refuse(ack, socket, "bad_request", "data.room must be a non-empty string");
    socket.leave(room);
    if (typeof ack === "function") ack({ ok: true, room });
  });
  socket.on("room:send", (data, ack) => {
    const room = roomOf(data);
    if (!room) return refuse(ack, socket, "bad_request", "data.room must be a non-empty string");
    if (!socket.rooms.has(room)) return refuse(ack, socket, "not_in_room", `join '${room}' before sending to it`);
    socket.to(room).emit("room:message", { room, from: socket.data.user, msg: data.msg });
    if (typeof ack === "function") ack({ ok: true });
  });
});

async function withRedis() {
  if (!process.env.REDIS_URL) return;
  const { createClient } = require("redis");
  const { createAdapter } = require("@socket.io/redis-adapter");
  const pub = createClient({ url: process.env.REDIS_URL });
  const sub = pub.duplicate();
  await Promise.all([pub.connect(), sub.connect()]);
  io.adapter(createAdapter(pub, sub));
}

const port = Number(process.argv[2] || 0);
withRedis().then(() => httpServer.listen(port, "127.0.0.1", () => {
  const a = httpServer.address();
  process.stderr.write(`socketio-server: listening on ${a.address}:${a.port}${process.env.REDIS_URL ? " (redis adapter)" : ""}\n`);
}), (err) => {
  process.stderr.write(`socketio-server: redis: ${err.message}\n`);
  process.exit(1);
});

function stop() {
  io.close();
  httpServer.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
}
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
