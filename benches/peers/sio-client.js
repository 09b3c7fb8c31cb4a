// socket.io-client (Node) receiving the ingest benchmark stream: the baseline
// Pulse is compared with.
//
// Usage: node sio-client.js --url http://127.0.0.1:PORT --n N --workload small|large
//
// Connects over WebSocket, emits `start` {workload}, counts every event the
// server sends (socket.io-client decodes each packet and calls the listener; the
// listener only counts: nothing is stored), and after N events prints one line
// `result {"events", "wall_s", "cpu_s", "rss_peak_mib"}` and exits. Wall time runs
// from before the connection is opened to the N-th event, like the Rust clients.
"use strict";

const { io } = require("socket.io-client");

const opts = { url: null, n: 0, workload: "small" };
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
  const next = () => argv[++i];
  switch (argv[i]) {
    case "--url": opts.url = next(); break;
    case "--n": opts.n = Number(next()); break;
    case "--workload": opts.workload = next(); break;
    default: throw new Error(`unknown option ${argv[i]}`);
  }
}

const cpu0 = process.cpuUsage();
const t0 = process.hrtime.bigint();
const socket = io(opts.url, { transports: ["websocket"], reconnection: false });
let count = 0;

socket.on("connect", () => socket.emit("start", { workload: opts.workload }));
socket.on("connect_error", (e) => {
  console.error(`connect_error: ${e.message}`);
  process.exit(1);
});
socket.onAny(() => {
  count++;
  if (count === opts.n) {
    const wall = Number(process.hrtime.bigint() - t0) / 1e9;
    const cpu = process.cpuUsage(cpu0);
    const result = {
      events: count,
      wall_s: wall,
      cpu_s: (cpu.user + cpu.system) / 1e6,
      rss_peak_mib: process.resourceUsage().maxRSS / 1024,
    };
    process.stdout.write(`result ${JSON.stringify(result)}\n`);
    socket.close();
    process.exit(0);
  }
});
setTimeout(() => {
  console.error(`timed out after ${count} of ${opts.n} events`);
  process.exit(1);
}, 300000).unref();
