// The Socket.IO 4.x server of the Pulse benchmarks (driven by `pulse-bench`).
//
// Usage: node sio-server.js --workloads DIR --blast N [--port P]
//   prints `listening <port>` once bound; exits when stdin closes.
//
// Two jobs:
// - ingest benchmark: a client emits `start` {workload: "small" | "large"} and the
//   server sends it N events from DIR/workload-<workload>.json (event i is
//   template i % templates.length, emitted as `socket.emit(type, data)`), as fast
//   as the connection takes them: it pauses while more than 1 MiB is queued on
//   the WebSocket, so memory stays bounded and the receiver sets the pace.
// - fan-out benchmark: clients connect with handshake auth {tenant}; they join
//   room `t:<tenant>`. `POST /ingest {tenant, events: [{type, data}]}` emits each
//   event to that room and answers {sent}. `GET /stats` answers {clients}.
//
// - cluster benchmark: `--redis redis://127.0.0.1:P` makes this server one node of
//   a cluster: the stock @socket.io/redis-streams-adapter (pinned in
//   package-lock.json) on that Redis carries every room emit to the other nodes.
//
// Only ever listens on 127.0.0.1.
"use strict";

const fs = require("fs");
const http = require("http");
const path = require("path");
const { Server } = require("socket.io");

const opts = { workloads: null, blast: 100000, port: 0, redis: null };
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
  const next = () => argv[++i];
  switch (argv[i]) {
    case "--workloads": opts.workloads = next(); break;
    case "--blast": opts.blast = Number(next()); break;
    case "--port": opts.port = Number(next()); break;
    case "--redis": opts.redis = next(); break;
    default: throw new Error(`unknown option ${argv[i]}`);
  }
}

const workloads = {};
if (opts.workloads) {
  for (const name of ["small", "large"]) {
    const file = path.join(opts.workloads, `workload-${name}.json`);
    if (fs.existsSync(file)) workloads[name] = JSON.parse(fs.readFileSync(file, "utf8"));
  }
}

const HIGH_WATER = 1 << 20;

function queued(socket) {
  const conn = socket.conn;
  const ws = conn.transport && conn.transport.socket;
  return (ws && typeof ws.bufferedAmount === "number" ? ws.bufferedAmount : 0) +
    conn.writeBuffer.length * 256;
}

// Each template as the WebSocket frame `socket.emit(type, data)` puts on the wire:
// an unmasked text frame holding the Engine.IO message `4` + the Socket.IO EVENT
// packet `2["type",{data}]`.
function wsFrame(text) {
  const payload = Buffer.from(text, "utf8");
  const n = payload.length;
  const head = n < 126 ? Buffer.from([0x81, n])
    : n < 65536 ? Buffer.from([0x81, 126, n >> 8, n & 0xff])
    : Buffer.concat([Buffer.from([0x81, 127, 0, 0, 0, 0]), Buffer.from([(n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff])]);
  return Buffer.concat([head, payload]);
}
const frames = {};
for (const [name, list] of Object.entries(workloads)) {
  frames[name] = list.map((t) => wsFrame("42" + JSON.stringify([t.type, t.data])));
}

// Send N events to one socket as fast as it takes them. By default the frames
// are written to the connection's TCP socket 256 at a time (bytes identical to
// `socket.emit`, whole frames only, so they interleave safely with the
// server's own pings), waiting for `drain` when the socket is backed up: the
// server then never limits the rate and the receiver sets the pace.
// SIO_EMIT=emit uses `socket.emit` per event instead (Node then limits the
// rate at about 200,000 small events/s on this machine).
async function blast(socket, name) {
  const list = frames[name];
  if (!list) {
    socket.emit("bench:error", { message: `no workload ${name}` });
    return;
  }
  const n = opts.blast;
  const ws = socket.conn.transport && socket.conn.transport.socket;
  const tcp = ws && ws._socket;
  if (process.env.SIO_EMIT === "emit" || !tcp) {
    const templates = workloads[name];
    let i = 0;
    while (i < n && socket.connected) {
      const end = Math.min(n, i + 256);
      for (; i < end; i++) {
        const t = templates[i % templates.length];
        socket.emit(t.type, t.data);
      }
      do {
        await new Promise((r) => setImmediate(r));
      } while (socket.connected && queued(socket) > HIGH_WATER);
    }
    return;
  }
  let i = 0;
  while (i < n && socket.connected) {
    const end = Math.min(n, i + 256);
    const chunk = [];
    for (; i < end; i++) chunk.push(list[i % list.length]);
    if (!tcp.write(Buffer.concat(chunk))) {
      await new Promise((r) => tcp.once("drain", r));
    }
  }
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      try {
        resolve(JSON.parse(Buffer.concat(chunks).toString("utf8") || "{}"));
      } catch (e) {
        reject(e);
      }
    });
    req.on("error", reject);
  });
}

let io;
const server = http.createServer(async (req, res) => {
  if (req.url === "/stats" && req.method === "GET") {
    res.writeHead(200, { "Content-Type": "application/json" });
    return res.end(JSON.stringify({ clients: io.of("/").sockets.size }));
  }
  if (req.url === "/ingest" && req.method === "POST") {
    try {
      const body = await readBody(req);
      const room = io.to(`t:${body.tenant}`);
      for (const e of body.events || []) room.emit(e.type, e.data);
      res.writeHead(200, { "Content-Type": "application/json" });
      return res.end(JSON.stringify({ sent: (body.events || []).length }));
    } catch (e) {
      res.writeHead(400, { "Content-Type": "application/json" });
      return res.end(JSON.stringify({ error: String(e) }));
    }
  }
  // Everything else is engine.io's.
});

async function adapter() {
  if (!opts.redis) return undefined;
  const { createClient } = require("redis");
  const { createAdapter } = require("@socket.io/redis-streams-adapter");
  const client = createClient({ url: opts.redis });
  client.on("error", (e) => console.error(`redis: ${e.message}`));
  await client.connect();
  return createAdapter(client);
}

async function main() {
io = new Server(server, {
  transports: ["websocket", "polling"],
  cors: { origin: "*" },
  adapter: await adapter(),
  // Defaults kept (pingInterval 25 s, no compression), as a stock server runs.
});

io.on("connection", (socket) => {
  const auth = socket.handshake.auth || {};
  if (auth.tenant) socket.join(`t:${auth.tenant}`);
  socket.on("start", (msg) => {
    blast(socket, (msg && msg.workload) || "small").catch((e) => console.error(e));
  });
});

server.listen(opts.port, "127.0.0.1", () => {
  process.stdout.write(`listening ${server.address().port}\n`);
});
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});

process.stdin.on("end", () => process.exit(0));
process.stdin.on("error", () => process.exit(0));
process.stdin.resume();
process.on("SIGTERM", () => process.exit(0));
