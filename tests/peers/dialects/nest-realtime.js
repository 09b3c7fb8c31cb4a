'use strict';
// Seed 002: the NestJS `RealtimeGateway` (Socket.IO 4, namespace /realtime), as
// @nestjs/platform-socket.io runs it: a socket.io Server on the HTTP server.
// - JWT in the handshake `auth` ({token}); a bad one: next(new Error('Unauthorized'))
//   (the client gets a CONNECT_ERROR), or with --refuse connection as the story's
//   gateway writes it: validated in handleConnection, which calls
//   `client.disconnect(true)` (the namespace is accepted, then dropped at once);
//   --refuse connection-ns: `client.disconnect()` (the namespace only);
// - the gateway joins `workspace:<workspaceId>` itself in handleConnection;
// - connection-state recovery on (the story asks "sync missed events on reconnect");
//   --recovery off: NestJS's IoAdapter default (none);
// - REST for the initial load / polling fallback: GET /api/approvals, /api/agents,
//   /api/notifications, /api/chat/messages (bearer).
//
// Client events are recorded in order (`received` in /_control/info).
// Control (tests): POST /_control/emit {event, data, workspace?}, /_control/drop
// (cut every transport: recoverable), /_control/raw {text} (garbage on the
// WebSocket), /_control/tokens, /_control/state; GET /_control/info.
// --transports polling disables the WebSocket transport.

const http = require('http');
const { Server } = require('socket.io');
const { Peer } = require('../ws/common');

const peer = new Peer('nest-realtime', {
  approvals: [],
  agents: [],
  notifications: [],
  messages: [],
});

const server = http.createServer(async (req, res) => {
  if (req.url.startsWith('/socket.io/')) return; // socket.io answers these
  if (await peer.handleControl(req, res, {
    emit: async (b) => {
      const target = b.workspace ? ns.to(`workspace:${b.workspace}`) : ns;
      target.emit(b.event, b.data);
      return { ok: true };
    },
    drop: async () => {
      let n = 0;
      for (const [, s] of ns.sockets) { s.conn.close(); n++; }
      return { dropped: n };
    },
    raw: async (b) => {
      let n = 0;
      for (const [, s] of ns.sockets) {
        const t = s.conn.transport;
        if (t && t.socket && typeof t.socket.send === 'function') { t.socket.send(b.text); n++; }
      }
      return { sent: n };
    },
  })) return;
  if (await peer.rest(req, res, {
    '/api/approvals': () => peer.state.approvals,
    '/api/agents': () => peer.state.agents,
    '/api/notifications': () => peer.state.notifications,
    '/api/chat/messages': () => peer.state.messages,
  })) return;
  Peer.json(res, 404, { message: 'not found' });
});

const io = new Server(server, {
  path: '/socket.io/',
  transports: peer.args.transports || ['polling', 'websocket'],
  ...(peer.args.recovery === false ? {} : {
    connectionStateRecovery: { maxDisconnectionDuration: 120000, skipMiddlewares: true },
  }),
  pingInterval: 2000,
  pingTimeout: 2000,
});
const ns = io.of('/realtime');

const inHandler = peer.args.refuse === 'connection' || peer.args.refuse === 'connection-ns';

ns.use((socket, next) => {
  peer.counters.connections++;
  const token = socket.handshake.auth && socket.handshake.auth.token;
  if (inHandler) { next(); return; }
  if (!peer.valid(token)) {
    peer.counters.auth_refused++;
    next(new Error('Unauthorized'));
    return;
  }
  peer.counters.auth_ok++;
  socket.data.workspace = peer.tenantOf(token);
  next();
});

let recovered = 0;
// Every client event as received, in order ({event, data}): the story's
// ClientToServerEvents (presence.update, typing.start, typing.stop) or anything.
const received = [];
ns.on('connection', (socket) => {
  socket.onAny((event, data) => { received.push({ event, data: data === undefined ? null : data }); });
  if (inHandler) {
    // handleConnection(client): verify the JWT, kick a bad client.
    const token = socket.handshake.auth && socket.handshake.auth.token;
    if (!peer.valid(token)) {
      peer.counters.auth_refused++;
      socket.disconnect(peer.args.refuse === 'connection');
      return;
    }
    peer.counters.auth_ok++;
    socket.data.workspace = peer.tenantOf(token);
  }
  if (socket.recovered) {
    recovered++;
  } else {
    socket.join(`workspace:${socket.data.workspace}`);
  }
});

peer.extraInfo = () => ({
  clients: ns.sockets.size,
  received,
  recovered,
  transports: [...ns.sockets.values()].map((s) => s.conn.transport.name),
});
peer.listen(server);
