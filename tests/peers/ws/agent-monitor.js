'use strict';
// Seed 000: `apps/platform/websocket.js` of the agent monitor / kanban board, as
// Pulse's `agent-monitor` profile assumes it (see docs/profiles.md):
// - plain `ws` at /ws, messages `{type, payload}`;
// - the JWT is the first message `{type: "auth", token}`; a bad one is closed with
//   1008; a good one is answered `{type: "connected", payload: {tenantId}}`;
// - `{type: "subscribe", room}` joins a room of the hook's three kinds:
//   `tenant:<id>` (only the token's tenant), `session:<sid>` (only the token's
//   own `sid` claim), `project:<id>` (any project; the seed has no membership);
// - REST is an express app; with --rate-limit it is behind the real
//   `express-rate-limit` on /api, configured as the seed's limit (100 per 15 min,
//   the library's defaults otherwise); every /api request is logged with its
//   arrival time and status (`rest_log` in info);
// - POST /_control/upgrades {refuse: "status", status} answers socket upgrades
//   with that HTTP status, {refuse: "destroy"} drops them unanswered,
//   {refuse: null} accepts them again (a proxy that blocks WebSockets);
// - broadcast.toTenant / toRoom send `{type, payload}` to a room;
// - REST the pages load on mount: GET /api/agents, /api/agents/stats, /api/tickets.
//
// Control (tests): POST /_control/emit {type, payload, room?} (room defaults to every
// tenant room), /_control/raw {text}, /_control/drop, /_control/freeze,
// /_control/ping (sends {type: "ping"}; replies counted as app_pongs),
// /_control/tokens {valid}, /_control/state {...}; GET /_control/info.

const http = require('http');
const express = require('express');
const { rateLimit } = require('express-rate-limit');
const { WebSocketServer } = require('ws');
const { Peer, claims } = require('./common');

const peer = new Peer('agent-monitor', {
  agents: [],
  agent_stats: {},
  tickets: [],
});

const clients = new Set(); // {ws, tenant, rooms:Set, frozen}
let appPongs = 0;

function send(c, type, payload) {
  c.ws.send(JSON.stringify({ type, payload }));
}

function toRoom(room, type, payload) {
  let n = 0;
  for (const c of clients) {
    if (c.tenant && c.rooms.has(room)) { send(c, type, payload); n++; }
  }
  return n;
}

let refuseUpgrades = null; // null | {refuse: 'status', status} | {refuse: 'destroy'}
let upgradesRefused = 0;
const restLog = []; // {path, at, status}

async function handle(req, res) {
  if (await peer.handleControl(req, res, {
    emit: async (b) => {
      if (b.room) return { sent: toRoom(b.room, b.type, b.payload) };
      let n = 0;
      for (const c of clients) {
        if (c.tenant && c.rooms.has(`tenant:${c.tenant}`)) { send(c, b.type, b.payload); n++; }
      }
      return { sent: n };
    },
    raw: async (b) => { for (const c of clients) c.ws.send(b.text); return { sent: clients.size }; },
    drop: async () => { const n = clients.size; for (const c of clients) c.ws.terminate(); return { dropped: n }; },
    freeze: async () => { for (const c of clients) c.frozen = true; return { frozen: clients.size }; },
    // An application-level ping; replies `{type: "pong"}` are counted.
    ping: async () => { for (const c of clients) send(c, 'ping', { ts: Date.now() }); return { sent: clients.size }; },
    upgrades: async (b) => { refuseUpgrades = b.refuse ? b : null; return { ok: true }; },
  })) return;
  if (await peer.rest(req, res, {
    '/api/agents': () => ({ agents: peer.state.agents }),
    '/api/agents/stats': () => ({ stats: peer.state.agent_stats }),
    '/api/tickets': () => ({ tickets: peer.state.tickets }),
  })) return;
  Peer.json(res, 404, { message: 'not found' });
}

const app = express();
app.use('/api', (req, res, next) => {
  const entry = { path: req.originalUrl.split('?')[0], at: Date.now(), status: null };
  restLog.push(entry);
  res.on('finish', () => {
    entry.status = res.statusCode;
    const ra = res.getHeader('Retry-After');
    if (res.statusCode === 429 && ra !== undefined) {
      // The earliest time a client that honours it may ask again.
      entry.retry_after = String(ra);
      entry.retry_at = /^\d+$/.test(String(ra)) ? entry.at + Number(ra) * 1000 : Date.parse(String(ra));
    }
  });
  next();
});
if (peer.args.rateLimit) {
  const { limit, windowMs } = peer.args.rateLimit;
  const options = { windowMs, limit };
  if (peer.args.retryAfter === 'date') {
    // The reset time as an HTTP date, rounded up to a whole second.
    options.retryAfter = (req) => new Date(Math.ceil(req.rateLimit.resetTime.getTime() / 1000) * 1000).toUTCString();
  }
  app.use('/api', rateLimit(options));
}
app.use((req, res) => { handle(req, res); });
const server = http.createServer(app);

const wss = new WebSocketServer({ noServer: true, autoPong: false });
server.on('upgrade', (req, socket, head) => {
  if (req.url.split('?')[0] !== '/ws') { socket.destroy(); return; }
  if (refuseUpgrades) {
    upgradesRefused++;
    if (refuseUpgrades.refuse === 'destroy') { socket.destroy(); return; }
    const status = refuseUpgrades.status || 503;
    socket.end(`HTTP/1.1 ${status} ${http.STATUS_CODES[status] || 'Refused'}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
    return;
  }
  wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req));
});

wss.on('connection', (ws) => {
  peer.counters.connections++;
  const c = { ws, tenant: null, rooms: new Set(), frozen: false };
  clients.add(c);
  const authTimer = setTimeout(() => { if (!c.tenant) ws.close(1008, 'no auth message'); }, 5000);
  ws.on('ping', (data) => { if (!c.frozen) ws.pong(data); });
  ws.on('message', (raw) => {
    if (c.frozen) return;
    let msg;
    try { msg = JSON.parse(raw.toString()); } catch (_) { send(c, 'error', { message: 'bad JSON' }); return; }
    if (!c.tenant) {
      if (msg.type === 'auth' && peer.valid(msg.token)) {
        c.tenant = peer.tenantOf(msg.token);
        c.sid = (claims(msg.token) || {}).sid || null;
        peer.counters.auth_ok++;
        clearTimeout(authTimer);
        send(c, 'connected', { tenantId: c.tenant });
      } else {
        peer.counters.auth_refused++;
        ws.close(1008, 'invalid token');
      }
      return;
    }
    if (msg.type === 'pong') { appPongs++; return; }
    if (msg.type === 'subscribe') {
      const room = String(msg.room || '');
      const ok = room === `tenant:${c.tenant}`
        || (c.sid && room === `session:${c.sid}`)
        || (room.startsWith('project:') && room.length > 'project:'.length);
      if (ok) {
        c.rooms.add(msg.room);
        send(c, 'subscribed', { room: msg.room });
      } else {
        send(c, 'error', { message: `forbidden room ${msg.room}` });
      }
    }
  });
  ws.on('close', () => { clearTimeout(authTimer); clients.delete(c); });
  ws.on('error', () => {});
});

peer.extraInfo = () => ({
  now: Date.now(),
  upgrades_refused: upgradesRefused,
  rest_log: restLog,
  app_pongs: appPongs,
  clients: clients.size,
  rooms: [...clients].map((c) => [...c.rooms]),
});
peer.listen(server);
