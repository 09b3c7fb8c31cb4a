'use strict';
// Seed 000: `apps/platform/websocket.js` of the agent monitor / kanban board, as
// Pulse's `agent-monitor` profile assumes it (see docs/profiles.md):
// - plain `ws` at /ws, messages `{type, payload}`;
// - the JWT is the first message `{type: "auth", token}`; a bad one is closed with
//   1008; a good one is answered `{type: "connected", payload: {tenantId}}`;
// - `{type: "subscribe", room}` joins `tenant:<id>` (only the token's tenant);
// - broadcast.toTenant / toRoom send `{type, payload}` to a room;
// - REST the pages load on mount: GET /api/agents, /api/agents/stats, /api/tickets.
//
// Control (tests): POST /_control/emit {type, payload, room?} (room defaults to every
// tenant room), /_control/raw {text}, /_control/drop, /_control/freeze,
// /_control/ping (sends {type: "ping"}; replies counted as app_pongs),
// /_control/tokens {valid}, /_control/state {...}; GET /_control/info.

const http = require('http');
const { WebSocketServer } = require('ws');
const { Peer } = require('./common');

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

const server = http.createServer(async (req, res) => {
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
  })) return;
  if (await peer.rest(req, res, {
    '/api/agents': () => ({ agents: peer.state.agents }),
    '/api/agents/stats': () => ({ stats: peer.state.agent_stats }),
    '/api/tickets': () => ({ tickets: peer.state.tickets }),
  })) return;
  Peer.json(res, 404, { message: 'not found' });
});

const wss = new WebSocketServer({ noServer: true, autoPong: false });
server.on('upgrade', (req, socket, head) => {
  if (req.url.split('?')[0] !== '/ws') { socket.destroy(); return; }
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
      if (msg.room === `tenant:${c.tenant}`) {
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
  app_pongs: appPongs,
  clients: clients.size,
  rooms: [...clients].map((c) => [...c.rooms]),
});
peer.listen(server);
