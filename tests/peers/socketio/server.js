// A real Socket.IO 4.x server for the pulse-core socketio tests, shaped like the
// seed backends (NestJS gateways): 002 uses namespace /realtime, a JWT in the
// handshake `auth`, workspace rooms; 004 uses the default namespace without auth,
// rooms joined with `dashboard:join` / `task:join`, and `resync_requested`.
//
// Usage: node server.js [options]      (prints `listening <port>` first)
//   --namespace /realtime   namespace the app lives on (default /)
//   --token SECRET          require handshake auth {token: SECRET}, else connect_error
//   --transports LIST       engine.io transports, e.g. `polling` (default websocket,polling)
//   --recovery              enable connectionStateRecovery
//   --ping-interval MS      engine.io pingInterval (default 25000)
//   --ping-timeout MS       engine.io pingTimeout (default 20000)
//   --path PATH             engine.io path (default /socket.io/)
//
// Control endpoints (JSON over HTTP on the same port, for the tests to drive it):
//   POST /control/emit {event, args, room?, ack?, timeout?}
//        emits to the namespace (or a room); args may hold {"$b64": "..."} for
//        binary Buffers. With ack: emits to each socket, waits for every answer
//        and returns {responses: [[args…] | {error} per socket]}.
//   POST /control/disconnect {mode: "transport" | "namespace"}
//        "transport": closes the low-level connection of every socket (a network
//        drop: the session is kept for recovery); "namespace": socket.disconnect().
//        Answers once every socket has seen its disconnect.
//   POST /control/raw {frames: [...], binary?: [base64…], engine_frames?: [...]}
//        writes raw Engine.IO message payloads (strings) and binary frames to
//        every connection, bypassing the Socket.IO encoder: garbage on purpose;
//        engine_frames go as whole WebSocket text frames (below Engine.IO).
//   GET  /control/state    {sockets: [{id, rooms, recovered, auth_keys, query, authorization}]}
//
// Client events: every event the server receives is echoed back to its sender as
// `received` {event, args}; when the client asks for an ack, the ack answers
// {event, args} as well (events named `silent…` get neither). `dashboard:join` / `task:join` {taskId} /
// `workspace:join` join rooms and answer `dashboard:state` / `task:state`.
// Exits when stdin closes (the test process went away).
"use strict";

const http = require("http");
const { Server } = require("socket.io");

function parseArgs(argv) {
  const opts = {
    namespace: "/",
    token: null,
    transports: ["websocket", "polling"],
    recovery: false,
    pingInterval: 25000,
    pingTimeout: 20000,
    path: "/socket.io/",
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = () => {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
      return argv[++i];
    };
    switch (a) {
      case "--namespace": opts.namespace = next(); break;
      case "--token": opts.token = next(); break;
      case "--transports": opts.transports = next().split(",").filter(Boolean); break;
      case "--recovery": opts.recovery = true; break;
      case "--ping-interval": opts.pingInterval = Number(next()); break;
      case "--ping-timeout": opts.pingTimeout = Number(next()); break;
      case "--path": opts.path = next(); break;
      default: throw new Error(`unknown option ${a}`);
    }
  }
  return opts;
}

const opts = parseArgs(process.argv.slice(2));

// Turn {"$b64": "..."} into Buffers (binary attachments), recursively.
function revive(v) {
  if (Array.isArray(v)) return v.map(revive);
  if (v && typeof v === "object") {
    const keys = Object.keys(v);
    if (keys.length === 1 && keys[0] === "$b64") return Buffer.from(v.$b64, "base64");
    const out = {};
    for (const k of keys) out[k] = revive(v[k]);
    return out;
  }
  return v;
}

// Buffers back to {"$b64": "..."} for JSON answers.
function toJson(v) {
  if (Buffer.isBuffer(v) || v instanceof Uint8Array) return { $b64: Buffer.from(v).toString("base64") };
  if (v instanceof ArrayBuffer) return { $b64: Buffer.from(v).toString("base64") };
  if (Array.isArray(v)) return v.map(toJson);
  if (v && typeof v === "object") {
    const out = {};
    for (const k of Object.keys(v)) out[k] = toJson(v[k]);
    return out;
  }
  return v;
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    let data = "";
    req.setEncoding("utf8");
    req.on("data", (c) => (data += c));
    req.on("end", () => {
      try {
        resolve(data ? JSON.parse(data) : {});
      } catch (e) {
        reject(e);
      }
    });
    req.on("error", reject);
  });
}

function reply(res, status, body) {
  res.writeHead(status, { "Content-Type": "application/json" });
  res.end(JSON.stringify(body));
}

let nsp; // set below

async function control(req, res) {
  const url = new URL(req.url, "http://x");
  try {
    if (req.method === "GET" && url.pathname === "/control/state") {
      const sockets = [];
      for (const [id, s] of nsp.sockets) {
        const auth = s.handshake.auth || {};
        sockets.push({
          id,
          rooms: [...s.rooms],
          recovered: s.recovered,
          transport: s.conn.transport.name,
          auth_keys: Object.keys(auth).sort(),
          query: Object.keys(s.handshake.query || {}).sort(),
          authorization: s.handshake.headers.authorization || null,
        });
      }
      return reply(res, 200, { sockets });
    }
    if (req.method !== "POST") return reply(res, 404, { error: "not found" });
    const body = await readBody(req);
    if (url.pathname === "/control/emit") {
      const args = revive(body.args || []);
      if (body.ack) {
        // Per socket, so every argument of each answer is kept (a broadcast
        // ack only passes the first one).
        const sockets = [...nsp.sockets.values()].filter((s) => !body.room || s.rooms.has(body.room));
        const responses = await Promise.all(
          sockets.map(
            (s) =>
              new Promise((resolve) => {
                s.timeout(body.timeout || 5000).emit(body.event, ...args, (err, ...answer) =>
                  resolve(err ? { error: String((err && err.message) || err) } : answer),
                );
              }),
          ),
        );
        return reply(res, 200, { responses: toJson(responses) });
      }
      (body.room ? nsp.to(body.room) : nsp).emit(body.event, ...args);
      return reply(res, 200, { ok: true });
    }
    if (url.pathname === "/control/disconnect") {
      const sockets = [...nsp.sockets.values()];
      const gone = sockets.map((s) => new Promise((r) => s.once("disconnect", (reason) => r(reason))));
      for (const s of sockets) {
        if (body.mode === "namespace") s.disconnect();
        else s.conn.close(); // drop the transport: recoverable
      }
      const reasons = await Promise.all(gone);
      return reply(res, 200, { reasons });
    }
    if (url.pathname === "/control/raw") {
      for (const s of nsp.sockets.values()) {
        for (const f of body.frames || []) s.conn.write(f);
        // Whole Engine.IO frames, only on a WebSocket transport.
        if (s.conn.transport.name === "websocket") {
          for (const f of body.engine_frames || []) s.conn.transport.socket.send(f);
        }
        for (const b of body.binary || []) s.conn.write(Buffer.from(b, "base64"));
      }
      return reply(res, 200, { ok: true });
    }
    return reply(res, 404, { error: "not found" });
  } catch (e) {
    return reply(res, 500, { error: String((e && e.message) || e) });
  }
}

const server = http.createServer((req, res) => {
  if (req.url.startsWith("/control/")) {
    control(req, res);
  }
  // Everything else is engine.io's (it answers unknown paths itself).
});

const io = new Server(server, {
  path: opts.path,
  transports: opts.transports,
  pingInterval: opts.pingInterval,
  pingTimeout: opts.pingTimeout,
  cors: { origin: "*" },
  ...(opts.recovery
    ? { connectionStateRecovery: { maxDisconnectionDuration: 2 * 60 * 1000, skipMiddlewares: false } }
    : {}),
});

nsp = io.of(opts.namespace);

if (opts.token !== null) {
  nsp.use((socket, next) => {
    const token = socket.handshake.auth && socket.handshake.auth.token;
    if (token !== opts.token) {
      const err = new Error("unauthorized: invalid or missing token");
      err.data = { code: "UNAUTHORIZED" };
      return next(err);
    }
    next();
  });
}

nsp.on("connection", (socket) => {
  const auth = socket.handshake.auth || {};
  if (auth.workspaceId && !socket.recovered) socket.join(`workspace:${auth.workspaceId}`);

  socket.on("dashboard:join", (...args) => {
    socket.join("dashboard");
    socket.emit("dashboard:state", { tasks: [] });
    const ack = typeof args[args.length - 1] === "function" ? args.pop() : null;
    if (ack) ack({ joined: "dashboard" });
  });
  socket.on("task:join", (data, ack) => {
    const room = `task:${data && data.taskId}`;
    socket.join(room);
    socket.emit("task:state", { taskId: data && data.taskId });
    if (typeof ack === "function") ack({ joined: room });
  });

  socket.onAny((event, ...args) => {
    if (event === "dashboard:join" || event === "task:join") return;
    if (event.startsWith("silent")) return; // never answered: for ack timeouts
    const ack = typeof args[args.length - 1] === "function" ? args.pop() : null;
    const answer = { event, args: toJson(args) };
    if (ack) ack(answer);
    else socket.emit("received", answer);
  });
});

server.listen(0, "127.0.0.1", () => {
  process.stdout.write(`listening ${server.address().port}\n`);
});

process.stdin.on("end", () => process.exit(0));
process.stdin.on("error", () => process.exit(0));
process.stdin.resume();
