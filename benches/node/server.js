// The Node.js baseline of `cargo bench --bench fanout`: the same job as
// `syncprobe serve` as far as `syncprobe load` needs it, written the plain way a
// Node developer would with the `ws` library (shared/PROTOCOL.md Part 1, plus the
// Part 2 pieces the load client measures with: `seq` and `epoch` in CONNECTED and
// `seq` in each event, `POST /api/ws/publish` with `count` and `ratePerSec`, and the
// `publishedAtUs` stamp).
//
// One organization room is a Set of sockets; each event is serialised once with
// JSON.stringify and sent with ws.send(text) to every socket of the room. No
// heartbeat, no authentication, no limits (the bench runs serve with
// --ping-interval 0).
//
// Run: `node server.js` listens on 127.0.0.1, on a free port, and prints one line,
// as `syncprobe serve --json` does:
// {"type":"listening","data":{"addr":"127.0.0.1:PORT","url":"ws://127.0.0.1:PORT"}}

'use strict';

const http = require('node:http');
const crypto = require('node:crypto');
const { WebSocketServer } = require('ws');

const SOCKET_PATH = '/api/ws/sync/';
// Largest request body read (publish requests are a few hundred bytes).
const MAX_BODY = 64 * 1024;
// Most events one publish request may ask for (as serve's limit).
const MAX_PUBLISH = 1000000;

// Changes at every start: this server keeps no history.
const epoch = crypto.randomUUID();
// organizationId -> { clients: Set<WebSocket>, seq: number }
const rooms = new Map();

function room(org) {
  let r = rooms.get(org);
  if (!r) {
    r = { clients: new Set(), seq: 0 };
    rooms.set(org, r);
  }
  return r;
}

// Microseconds since the Unix epoch, for the load client's latency.
function nowUs() {
  return Math.round((performance.timeOrigin + performance.now()) * 1000);
}

// One event to every socket of the organization: serialised once, sent to each.
function broadcast(org, type, pfaId, details) {
  const r = room(org);
  r.seq += 1;
  const event = { type, pfaId, organizationId: org, timestamp: new Date().toJSON() };
  if (details !== undefined) event.details = details;
  event.seq = r.seq;
  event.publishedAtUs = nowUs();
  const text = JSON.stringify(event);
  for (const ws of r.clients) {
    ws.send(text);
  }
  return r.seq;
}

function answer(res, status, body) {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}

function invalid(res, message) {
  answer(res, 400, { error: 'VALIDATION_ERROR', message });
}

// POST /api/ws/publish: unpaced events are sent before the answer (200), paced
// ones (ratePerSec > 0) after it (202), the first at once.
function publish(req, res, body) {
  let request;
  try {
    request = JSON.parse(body);
  } catch {
    return invalid(res, 'the body is not JSON');
  }
  if (request === null || typeof request !== 'object') {
    return invalid(res, 'the body is not a JSON object');
  }
  const { organizationId: org, type, details } = request;
  const pfaId = request.pfaId ?? 'pfa-published';
  const count = request.count ?? 1;
  const rate = request.ratePerSec ?? 0;
  if (typeof org !== 'string' || org === '') return invalid(res, 'organizationId is required');
  if (typeof type !== 'string' || type === '') return invalid(res, 'type is required');
  if (!Number.isInteger(count) || count < 1 || count > MAX_PUBLISH) {
    return invalid(res, `count must be an integer from 1 to ${MAX_PUBLISH}`);
  }
  if (typeof rate !== 'number' || rate < 0) return invalid(res, 'ratePerSec must be 0 or more');
  if (rate === 0) {
    let first = null;
    let last = 0;
    for (let i = 0; i < count; i++) {
      last = broadcast(org, type, pfaId, details);
      if (first === null) first = last;
    }
    return answer(res, 200, {
      success: true, published: count, accepted: count, firstSeq: first, lastSeq: last,
    });
  }
  let left = count;
  const tick = () => {
    broadcast(org, type, pfaId, details);
    left -= 1;
    if (left === 0) clearInterval(timer);
  };
  const timer = setInterval(tick, 1000 / rate);
  tick();
  return answer(res, 202, { success: true, published: 0, accepted: count });
}

const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://localhost');
  if (req.method === 'GET' && url.pathname === '/healthz') {
    return answer(res, 200, { status: 'ok' });
  }
  if (req.method !== 'POST' || url.pathname !== '/api/ws/publish') {
    return answer(res, 404, { error: 'NOT_FOUND', message: `no route ${req.method} ${url.pathname}` });
  }
  const chunks = [];
  let size = 0;
  req.on('data', (chunk) => {
    size += chunk.length;
    if (size > MAX_BODY) {
      answer(res, 413, { error: 'PAYLOAD_TOO_LARGE', message: 'the body is too large' });
      req.destroy();
      return;
    }
    chunks.push(chunk);
  });
  req.on('end', () => publish(req, res, Buffer.concat(chunks).toString('utf8')));
});

const wss = new WebSocketServer({ noServer: true });

server.on('upgrade', (req, socket, head) => {
  const { pathname } = new URL(req.url, 'http://localhost');
  if (pathname !== SOCKET_PATH.slice(0, -1) && !pathname.startsWith(SOCKET_PATH)) {
    socket.end('HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
    return;
  }
  const org = decodeURIComponent(pathname.slice(SOCKET_PATH.length));
  wss.handleUpgrade(req, socket, head, (ws) => {
    if (org === '' || org.includes('/')) {
      ws.close(4000, 'Missing organizationId');
      return;
    }
    const r = room(org);
    r.clients.add(ws);
    ws.on('close', () => r.clients.delete(ws));
    ws.on('error', () => r.clients.delete(ws));
    ws.send(JSON.stringify({
      type: 'CONNECTED', organizationId: org, timestamp: new Date().toJSON(), seq: r.seq, epoch,
    }));
  });
});

server.listen(0, '127.0.0.1', () => {
  const { address, port } = server.address();
  const addr = `${address}:${port}`;
  process.stdout.write(`${JSON.stringify({ type: 'listening', data: { addr, url: `ws://${addr}` } })}\n`);
});

process.on('SIGTERM', () => process.exit(0));
