'use strict';
// Seed 001: `src/gateway/websocket.ts` + `websocket-bridge.ts`:
// - plain `ws` at /ws?token=JWT; a bad token is closed with 4001 "Unauthorized"
//   right after the upgrade (auth happens inside wss.on('connection'));
// - after auth: `{type: "connected"}` then the three stats blocks
//   (`stats:tasks`, `stats:approvals`, `stats:conversations`, `{type, payload}`);
// - broadcast() sends to every client;
// - REST the dashboard used to poll: GET /api/v1/tasks/stats,
//   /api/v1/approvals/stats (as {stats}), /api/v1/conversations/stats.
//
// Control (tests): POST /_control/emit {type, payload}, /_control/raw {text},
// /_control/drop, /_control/freeze, /_control/initial {send: bool} (whether stats
// are pushed on connect), /_control/tokens, /_control/state; GET /_control/info.

const http = require('http');
const { WebSocketServer } = require('ws');
const { Peer } = require('./common');

const peer = new Peer('event-bridge', {
  tasks: { pending: 0, inProgress: 0, completed: 0, total: 0 },
  approvals: { pending: 0, approved: 0, rejected: 0 },
  conversations: { open: 0, escalated: 0, resolved: 0 },
});
let sendInitial = true;

const clients = new Set();

function broadcast(msg) {
  const text = JSON.stringify(msg);
  for (const c of clients) c.ws.send(text);
  return clients.size;
}

const server = http.createServer(async (req, res) => {
  if (await peer.handleControl(req, res, {
    emit: async (b) => ({ sent: broadcast({ type: b.type, payload: b.payload }) }),
    raw: async (b) => { for (const c of clients) c.ws.send(b.text); return { sent: clients.size }; },
    drop: async () => { const n = clients.size; for (const c of clients) c.ws.terminate(); return { dropped: n }; },
    freeze: async () => { for (const c of clients) c.frozen = true; return { frozen: clients.size }; },
    initial: async (b) => { sendInitial = !!b.send; return { ok: true }; },
  })) return;
  if (await peer.rest(req, res, {
    '/api/v1/tasks/stats': () => peer.state.tasks,
    '/api/v1/approvals/stats': () => ({ stats: peer.state.approvals }),
    '/api/v1/conversations/stats': () => peer.state.conversations,
  })) return;
  Peer.json(res, 404, { message: 'not found' });
});

const wss = new WebSocketServer({ server, path: '/ws', autoPong: false });
wss.on('connection', (ws, req) => {
  peer.counters.connections++;
  const token = new URL(req.url, 'http://x').searchParams.get('token');
  ws.on('error', () => {});
  if (!peer.valid(token)) {
    peer.counters.auth_refused++;
    ws.close(4001, 'Unauthorized');
    return;
  }
  peer.counters.auth_ok++;
  const c = { ws, frozen: false };
  clients.add(c);
  ws.on('ping', (data) => { if (!c.frozen) ws.pong(data); });
  ws.on('close', () => clients.delete(c));
  ws.send(JSON.stringify({ type: 'connected' }));
  if (sendInitial) {
    ws.send(JSON.stringify({ type: 'stats:tasks', payload: peer.state.tasks }));
    ws.send(JSON.stringify({ type: 'stats:approvals', payload: peer.state.approvals }));
    ws.send(JSON.stringify({ type: 'stats:conversations', payload: peer.state.conversations }));
  }
});

peer.extraInfo = () => ({ clients: clients.size });
peer.listen(server);
