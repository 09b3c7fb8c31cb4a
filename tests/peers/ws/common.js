'use strict';
// Shared plumbing of the dialect test peers (Node built-ins only, so the
// Socket.IO peers in ../dialects can require it too).
//
// Every peer:
// - listens on 127.0.0.1:--port (0 = any) and prints the port as its first
//   stdout line;
// - accepts the tokens given with --tokens a,b (or POST /_control/tokens);
// - starts from the JSON state in --state FILE (so a test can restart it with a
//   state that changed while it was down, and no event says so);
// - answers POST /_control/<verb> with a JSON body, and GET /_control/info;
// - counts every REST GET per path (`rest` in info: the request log);
// - --missing /a,/b: those REST paths are not on the server (404, the
//   framework's own answer); --fail /a:500:2: the first 2 GETs of /a answer 500;
// - --refuse connection|connection-ns|middleware and --recovery on|off are read
//   by the Socket.IO peers (how a bad token is refused; connection-state recovery);
// - --rate-limit LIMIT/WINDOW_MS (agent-monitor): express-rate-limit on /api as
//   seed 000's platform limits it (100 per 15 min; a test scales the window),
//   --retry-after date: its 429s say Retry-After as an HTTP date, not seconds.

const fs = require('fs');

function parseArgs(argv) {
  const out = {
    port: 0, state: null, tokens: [], transports: null,
    missing: [], fail: {}, refuse: null, recovery: null,
    rateLimit: null, retryAfter: 'seconds',
  };
  for (let i = 2; i < argv.length; i++) {
    const a = argv[i];
    const v = argv[i + 1];
    if (a === '--port') { out.port = Number(v); i++; }
    else if (a === '--state') { out.state = v; i++; }
    else if (a === '--tokens') { out.tokens = v.split(',').filter(Boolean); i++; }
    else if (a === '--transports') { out.transports = v.split(',').filter(Boolean); i++; }
    else if (a === '--missing') { out.missing = v.split(',').filter(Boolean); i++; }
    else if (a === '--fail') {
      for (const f of v.split(',').filter(Boolean)) {
        const [path, status, times] = f.split(':');
        out.fail[path] = { status: Number(status), times: Number(times || 1) };
      }
      i++;
    }
    else if (a === '--refuse') { out.refuse = v; i++; }
    else if (a === '--recovery') { out.recovery = v === 'on'; i++; }
    else if (a === '--rate-limit') {
      const [limit, windowMs] = v.split('/').map(Number);
      out.rateLimit = { limit, windowMs };
      i++;
    }
    else if (a === '--retry-after') { out.retryAfter = v; i++; }
    else { throw new Error(`unknown argument ${a}`); }
  }
  return out;
}

// The (unverified) claims of a JWT-shaped token.
function claims(token) {
  try {
    const part = String(token).split('.')[1];
    return JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
  } catch (_) {
    return null;
  }
}

class Peer {
  constructor(name, defaults) {
    this.name = name;
    this.args = parseArgs(process.argv);
    this.state = JSON.parse(JSON.stringify(defaults));
    if (this.args.state) {
      Object.assign(this.state, JSON.parse(fs.readFileSync(this.args.state, 'utf8')));
    }
    this.tokens = new Set(this.args.tokens);
    this.counters = { connections: 0, auth_ok: 0, auth_refused: 0, rest: {}, rest_refused: 0 };
    this.control = {};
  }

  valid(token) {
    return typeof token === 'string' && this.tokens.has(token);
  }

  tenantOf(token) {
    const c = claims(token) || {};
    return c.tenant_id || c.tenantId || c.tenant || c.workspaceId || c.workspace_id || null;
  }

  bearer(req) {
    const h = req.headers.authorization || '';
    return h.startsWith('Bearer ') ? h.slice(7) : null;
  }

  static json(res, status, body) {
    const text = JSON.stringify(body);
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
    res.end(text);
  }

  static body(req) {
    return new Promise((resolve) => {
      let data = '';
      req.on('data', (c) => { data += c; });
      req.on('end', () => {
        try { resolve(data ? JSON.parse(data) : {}); } catch (_) { resolve({}); }
      });
    });
  }

  // REST with bearer auth: `routes` maps a path to a function returning the body.
  async rest(req, res, routes) {
    const path = req.url.split('?')[0];
    if (req.method === 'GET' && this.args.missing.includes(path)) {
      this.counters.rest[path] = (this.counters.rest[path] || 0) + 1;
      Peer.json(res, 404, { statusCode: 404, message: `Cannot GET ${path}`, error: 'Not Found' });
      return true;
    }
    const route = routes[path];
    if (!route || req.method !== 'GET') return false;
    this.counters.rest[path] = (this.counters.rest[path] || 0) + 1;
    const fail = this.args.fail[path];
    if (fail && fail.times > 0) {
      fail.times--;
      Peer.json(res, fail.status, { statusCode: fail.status, message: 'Internal server error' });
      return true;
    }
    if (this.requireAuth !== false && !this.valid(this.bearer(req))) {
      this.counters.rest_refused++;
      Peer.json(res, 401, { message: 'Unauthorized' });
      return true;
    }
    Peer.json(res, 200, route());
    return true;
  }

  // `/_control/*`; `extra` maps verbs to async (body) => answer.
  async handleControl(req, res, extra) {
    const path = req.url.split('?')[0];
    if (!path.startsWith('/_control/')) return false;
    const verb = path.slice('/_control/'.length);
    const body = await Peer.body(req);
    const verbs = Object.assign({
      info: async () => this.info(),
      tokens: async (b) => { this.tokens = new Set(b.valid || []); return { ok: true }; },
      state: async (b) => { Object.assign(this.state, b); return { ok: true }; },
    }, extra);
    const fn = verbs[verb];
    if (!fn) { Peer.json(res, 404, { message: `no control verb ${verb}` }); return true; }
    try {
      Peer.json(res, 200, (await fn(body)) || { ok: true });
    } catch (e) {
      Peer.json(res, 500, { message: String(e && e.stack || e) });
    }
    return true;
  }

  info() {
    return Object.assign({ name: this.name, state: this.state }, this.counters, this.extraInfo ? this.extraInfo() : {});
  }

  listen(server) {
    server.listen(this.args.port, '127.0.0.1', () => {
      process.stdout.write(`${server.address().port}\n`);
    });
    const stop = () => { process.exit(0); };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
  }
}

module.exports = { Peer, claims, parseArgs };
