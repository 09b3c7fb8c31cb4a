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
// - REST the pages load on mount: GET /api/agents, /api/agents/stats, /api/tickets;
// - mutations (seed's `routes/tickets.js` and `routes/agents.js`, behind
//   `requireAuth`: a bad bearer token is 401):
//   PATCH /api/tickets/:id — the seed's route: update the ticket's state from the
//     body, then `broadcast.ticketUpdate(ticket.id, ticket.state, {projectId,
//     tenantId, ticket, action})` (the `ticket:<id>` room) and
//     `broadcast.toTenant(tenantId, 'ticket:update', {ticketId, state, ticket,
//     action: 'updated'})`, then `res.json(ticket)`. The seed elides its "existing
//     update logic": an unknown ticket is 404, a body without a string `state`
//     is 400 (there is nothing to broadcast), a body that is not JSON is 400
//     (Express's `express.json()`);
//   POST /api/agents/:id/terminate — the seed shows only the handler's broadcast,
//     `broadcast.agentTerminated(req.user.tenantId, agentId, 'manual')` (the
//     reason broadcast is 'manual', whatever the body says); the path is the
//     `agent-monitor` profile's default; it answers `{success: true}` (as the
//     seed's `internal.js` does), or the agent when the state says
//     `terminate_answer: "agent"` (the seed shows neither); an unknown agent is 404;
// - NOT in seed 000, a team's own addition that
//   `profiles/examples/agent-monitor-approvals.toml` speaks: GET /api/approvals →
//   {approvals}, POST /api/approvals/:id/{approve,reject} {reason} → the approval
//   (a decided one is 409 {error, approval}), broadcast `approval:updated
//   {approval}` to the tenant;
// - every mutation request received is recorded (`requests` in info: method,
//   path, body, whether its token was accepted).
//
// Control (tests): POST /_control/emit {type, payload, room?} (room defaults to every
// tenant room), /_control/raw {text}, /_control/drop, /_control/freeze,
// /_control/garbage {answers: [{status, text}]} (the next mutations get these raw
// answers),
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
  approvals: [],
});
peer.counters.requests = [];

const clients = new Set(); // {ws, tenant, rooms:Set, frozen}
const garbage = []; // canned raw answers for the next mutations (tests)
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

function toTenant(tenantId, type, payload) {
  return toRoom(`tenant:${tenantId}`, type, payload);
}

// `broadcast.ticketUpdate(ticketId, state, extra)`: ticket state changes, to the
// ticket's own room.
function ticketUpdate(ticketId, state, extra) {
  return toRoom(`ticket:${ticketId}`, 'ticket:update', { ticketId, state, ...extra });
}

function rawBody(req) {
  return new Promise((resolve) => {
    let data = '';
    req.on('data', (c) => { data += c; });
    req.on('end', () => resolve(data));
  });
}

// The mutations; `true` when the request was one.
async function mutation(req, res) {
  const path = req.url.split('?')[0];
  const routes = [
    ['PATCH', /^\/api\/tickets\/([^/]+)$/, patchTicket],
    ['POST', /^\/api\/agents\/([^/]+)\/terminate$/, terminateAgent],
    ['POST', /^\/api\/approvals\/([^/]+)\/(approve|reject)$/, decide],
  ];
  const hit = routes.find(([m, re]) => m === req.method && re.test(path));
  if (!hit) return false;
  const [, re, handler] = hit;
  const params = path.match(re).slice(1).map(decodeURIComponent);
  const text = await rawBody(req);
  const token = peer.bearer(req);
  const authorized = peer.valid(token);
  let body = null;
  let parsed = true;
  if (text) {
    try { body = JSON.parse(text); } catch (_) { parsed = false; }
  }
  peer.counters.requests.push({ method: req.method, path, body: parsed ? body : text, authorized });
  // Garbage answers for the tests (`/_control/garbage {answers: [{status, text}]}`):
  // the next mutations are answered with these raw texts instead.
  if (garbage.length > 0) {
    const g = garbage.shift();
    res.writeHead(g.status, { 'content-type': 'text/html' });
    res.end(g.text);
    return true;
  }
  // requireAuth
  if (!authorized) { Peer.json(res, 401, { error: 'Unauthorized' }); return true; }
  // express.json(): a body that is not JSON never reaches the route.
  if (!parsed) { Peer.json(res, 400, { error: 'Bad Request' }); return true; }
  const user = { tenantId: peer.tenantOf(token) };
  handler({ params, body: body || {}, user }, res);
  return true;
}

// router.patch('/:id', requireAuth, …) of routes/tickets.js.
function patchTicket(req, res) {
  const [id] = req.params;
  const ticket = peer.state.tickets.find((t) => String(t.id) === id);
  if (!ticket) { Peer.json(res, 404, { error: 'Ticket not found' }); return; }
  if (typeof req.body.state !== 'string') { Peer.json(res, 400, { error: 'state is required' }); return; }
  ticket.state = req.body.state;
  // Broadcast update to subscribers
  ticketUpdate(ticket.id, ticket.state, {
    projectId: ticket.project_id,
    tenantId: req.user.tenantId,
    ticket: ticket,
    action: 'updated',
  });
  // Also broadcast to tenant for dashboard-wide updates
  toTenant(req.user.tenantId, 'ticket:update', {
    ticketId: ticket.id,
    state: ticket.state,
    ticket: ticket,
    action: 'updated',
  });
  Peer.json(res, 200, ticket);
}

// The termination handler of routes/agents.js.
function terminateAgent(req, res) {
  const [agentId] = req.params;
  const agent = peer.state.agents.find((a) => String(a.id) === agentId);
  if (!agent) { Peer.json(res, 404, { error: 'Agent not found' }); return; }
  agent.status = 'terminated';
  // After agent termination:
  toTenant(req.user.tenantId, 'agent:terminated', { agentId, reason: 'manual' });
  // The seed does not show the answer: `{success: true}` (as its internal.js), or
  // the agent (`state.terminate_answer = "agent"`), both plausible.
  if (peer.state.terminate_answer === 'agent') Peer.json(res, 200, agent);
  else Peer.json(res, 200, { success: true });
}

// The team's own approvals routes (not in seed 000).
function decide(req, res) {
  const [id, verb] = req.params;
  const approval = peer.state.approvals.find((a) => String(a.id) === id);
  if (!approval) { Peer.json(res, 404, { error: 'Approval not found' }); return; }
  if (approval.status !== 'pending') {
    Peer.json(res, 409, { error: `Approval already ${approval.status}`, approval });
    return;
  }
  approval.status = verb === 'approve' ? 'approved' : 'rejected';
  approval.decision_reason = req.body.reason ?? null;
  toTenant(req.user.tenantId, 'approval:updated', { approval });
  Peer.json(res, 200, approval);
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
    garbage: async (b) => { garbage.push(...(b.answers || [])); return { queued: garbage.length }; },
    // An application-level ping; replies `{type: "pong"}` are counted.
    ping: async () => { for (const c of clients) send(c, 'ping', { ts: Date.now() }); return { sent: clients.size }; },
    upgrades: async (b) => { refuseUpgrades = b.refuse ? b : null; return { ok: true }; },
  })) return;
  if (await mutation(req, res)) return;
  if (await peer.rest(req, res, {
    '/api/approvals': () => ({ approvals: peer.state.approvals }),
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
