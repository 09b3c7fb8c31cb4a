'use strict';
// Seed 004: the NestJS `TasksGateway` (Socket.IO 4 on the HTTP port, default
// namespace, no authentication yet, no event log):
// - `dashboard:join` → room `dashboard`, answered with `dashboard:state` {tasks};
// - `task:join` {taskId} → room `task:<id>`, answered with `task:state` (the task);
// - `resync_requested` → `dashboard:state` again (and `task:state` per task room);
// - task updates go to `dashboard` and `task:<id>`: `task:status_changed`
//   {taskId, status, previousStatus}, `task:event_added` {taskId, event},
//   `task:pr_updated` {taskId, pr}, `dashboard:task_list_updated` {tasks}.
//
// Every client event is recorded in order (`received` in /_control/info), with the
// rooms each socket is in (`rooms`).
// Control (tests): POST /_control/emit {event, data, rooms?} (default: dashboard),
// /_control/drop, /_control/raw {text}, /_control/state {tasks}; GET /_control/info.
// --transports polling disables the WebSocket transport (the seed's server allows
// both; a proxy that blocks WebSockets leaves only polling).

const http = require('http');
const { Server } = require('socket.io');
const { Peer } = require('../ws/common');

const peer = new Peer('tasks-gateway', { tasks: [] });
peer.requireAuth = false;
const counts = { dashboard_joins: 0, task_joins: 0, resyncs: 0 };
// Every client event as received, in order ({event, data}): what tests read.
const received = [];

function task(id) {
  return peer.state.tasks.find((t) => String(t.id) === String(id));
}

// A task that does not exist is answered like the Nest gateway's WsException.
function sendTask(socket, id) {
  const t = task(id);
  if (t) socket.emit('task:state', t);
  else socket.emit('exception', { status: 'error', message: `task ${id} not found` });
}

const server = http.createServer(async (req, res) => {
  if (req.url.startsWith('/socket.io/')) return;
  if (await peer.handleControl(req, res, {
    emit: async (b) => {
      let target = io;
      for (const r of b.rooms || ['dashboard']) target = target.to(r);
      target.emit(b.event, b.data);
      return { ok: true };
    },
    drop: async () => {
      let n = 0;
      for (const [, s] of io.sockets.sockets) { s.conn.close(); n++; }
      return { dropped: n };
    },
    raw: async (b) => {
      let n = 0;
      for (const [, s] of io.sockets.sockets) {
        const t = s.conn.transport;
        if (t && t.socket && typeof t.socket.send === 'function') { t.socket.send(b.text); n++; }
      }
      return { sent: n };
    },
  })) return;
  Peer.json(res, 404, { message: 'not found' });
});

const io = new Server(server, {
  transports: peer.args.transports || ['polling', 'websocket'],
  pingInterval: 2000,
  pingTimeout: 2000,
});

io.on('connection', (socket) => {
  peer.counters.connections++;
  socket.onAny((event, data) => { received.push({ event, data: data === undefined ? null : data }); });
  socket.on('dashboard:join', () => {
    counts.dashboard_joins++;
    socket.join('dashboard');
    socket.emit('dashboard:state', { tasks: peer.state.tasks });
  });
  socket.on('dashboard:leave', () => socket.leave('dashboard'));
  socket.on('task:join', (data) => {
    counts.task_joins++;
    const id = data && data.taskId;
    socket.join(`task:${id}`);
    sendTask(socket, id);
  });
  socket.on('task:leave', (data) => socket.leave(`task:${data && data.taskId}`));
  socket.on('resync_requested', () => {
    counts.resyncs++;
    socket.emit('dashboard:state', { tasks: peer.state.tasks });
    for (const room of socket.rooms) {
      if (room.startsWith('task:')) sendTask(socket, room.slice(5));
    }
  });
});

peer.extraInfo = () => Object.assign({
  clients: io.sockets.sockets.size,
  received,
  rooms: [...io.sockets.sockets.values()].map((s) => [...s.rooms].filter((r) => r !== s.id)),
  transports: [...io.sockets.sockets.values()].map((s) => s.conn.transport.name),
}, counts);
peer.listen(server);
