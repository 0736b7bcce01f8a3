// A chat room on Bun.serve's WebSockets (uWebSockets inside), written the way
// Bun's docs do pub/sub: one topic per room (`ws.subscribe(room)`,
// `ws.publish` / `server.publish` for the fan-out, done in native code), a Map
// of id -> socket for notices, and JSON.stringify once per message.
// It speaks Switchboard's protocol v1 (docs/PROTOCOL.md) with the same
// semantics and frames as ../node-ws/server.js, so the benchmark's scenarios
// behave the same against it.
//
//   PORT=3101 node_modules/@oven/bun-linux-x64/bin/bun server.js   (or: bun server.js 3101)
//   TLS_CERT=cert.pem TLS_KEY=key.pem   serve wss:// instead of ws://
//
// The start line ("bun serving … bun=<Bun.version> exe=<binary> pid=<pid>")
// is what bench.py checks to prove this column is measured on Bun itself.
'use strict';

const { request, checkRoom, replies } = require('../v1.js');

const PORT = Number(process.env.PORT || process.argv[2] || 3001);
const HOST = process.env.HOST || '127.0.0.1';
const ID_RE = /^[A-Za-z0-9_.-]{1,64}$/;
// Every socket is subscribed to this topic, for broadcast. Room names cannot
// contain control characters, so no room can be called this.
const ALL = '\u0000all';

// id -> ws. Each ws.data is { id, rooms: Set of rooms, replaced }; the rooms
// belong to the id and move to a socket that replaces it.
const sockets = new Map();

function idFromUrl(reqUrl) {
  const u = new URL(reqUrl);
  let id = null;
  if (u.pathname.startsWith('/ws/')) id = decodeURIComponent(u.pathname.slice(4));
  else if (u.pathname === '/ws') id = u.searchParams.get('id');
  else return { status: 404, reason: 'no such endpoint: connect to /ws/<id> or /ws?id=<id>' };
  if (id === '' && u.searchParams.get('id')) id = u.searchParams.get('id');
  if (!id) return { status: 400, reason: 'missing id: connect to /ws/<id> or /ws?id=<id>' };
  if (!ID_RE.test(id)) return { status: 400, reason: `invalid id ${JSON.stringify(id)}: an id is 1-64 characters of A-Z a-z 0-9 _ . -` };
  return { id };
}

function send(ws, msg) {
  if (ws && ws.readyState === 1) ws.send(JSON.stringify(msg));
}

const { error, ack } = replies(send);

function message(ws, raw) {
  const { id, rooms } = ws.data;
  if (typeof raw !== 'string') return error(ws, undefined, 'bad-request', 'binary frames are not supported: send JSON text frames');
  const req = request(raw);
  if (req.refused) return error(ws, ...req.refused);
  const { msg, ref } = req;

  switch (msg.type) {
    case 'join': {
      const bad = checkRoom(msg);
      if (bad) return error(ws, ref, 'bad-request', bad);
      const room = msg.room;
      if (!rooms.has(room)) {
        rooms.add(room);
        ws.subscribe(room);
        // Every member, the joiner included: the others by the topic, the
        // joiner directly (so its `joined` is queued before its ack).
        const joined = JSON.stringify({ type: 'joined', room, id });
        ws.publish(room, joined);
        ws.send(joined);
      }
      return ack(ws, ref);
    }
    case 'leave': {
      const bad = checkRoom(msg);
      if (bad) return error(ws, ref, 'bad-request', bad);
      const room = msg.room;
      if (!rooms.has(room)) return error(ws, ref, 'not-in-room', `not a member of room \`${room}\``);
      // The leaver and the remaining members.
      const left = JSON.stringify({ type: 'left', room, id });
      ws.unsubscribe(room);
      rooms.delete(room);
      server.publish(room, left);
      ws.send(left);
      return ack(ws, ref);
    }
    case 'room': {
      const bad = checkRoom(msg);
      if (bad) return error(ws, ref, 'bad-request', bad);
      if (!('data' in msg)) return error(ws, ref, 'bad-request', 'missing field `data` (any JSON value, null allowed)');
      const room = msg.room;
      if (!rooms.has(room)) return error(ws, ref, 'not-in-room', `not a member of room \`${room}\``);
      // ws.publish leaves out the sender, as protocol v1 does.
      ws.publish(room, JSON.stringify({ type: 'room', room, from: id, data: msg.data }));
      return ack(ws, ref);
    }
    case 'broadcast': {
      if (!('data' in msg)) return error(ws, ref, 'bad-request', 'missing field `data` (any JSON value, null allowed)');
      ws.publish(ALL, JSON.stringify({ type: 'broadcast', from: id, data: msg.data }));
      return ack(ws, ref);
    }
    case 'notice': {
      if (!('to' in msg)) return error(ws, ref, 'bad-request', 'missing field `to`');
      if (typeof msg.to !== 'string') return error(ws, ref, 'bad-request', 'field `to` must be a string');
      if (!('data' in msg)) return error(ws, ref, 'bad-request', 'missing field `data` (any JSON value, null allowed)');
      const target = sockets.get(msg.to);
      if (!target || target.readyState !== 1) {
        return error(ws, ref, 'target-closed', `\`${msg.to}\` is not online`);
      }
      send(target, { type: 'notice', from: id, data: msg.data });
      return ack(ws, ref);
    }
    case 'ping':
      send(ws, { type: 'pong' });
      return ack(ws, ref);
    default:
      return error(ws, ref, 'unknown-type', `unknown type \`${msg.type}\`: expected join, leave, room, broadcast, notice or ping`);
  }
}

const tls = process.env.TLS_CERT
  ? { cert: Bun.file(process.env.TLS_CERT), key: Bun.file(process.env.TLS_KEY) }
  : undefined;

const server = Bun.serve({
  hostname: HOST,
  port: PORT,
  tls,
  development: false,
  fetch(req, server) {
    const r = idFromUrl(req.url);
    if (!r.id) return new Response(r.reason, { status: r.status });
    if (server.upgrade(req, { data: { id: r.id, rooms: null, replaced: false } })) return undefined;
    return new Response('expected a WebSocket upgrade', { status: 426 });
  },
  websocket: {
    // As node-ws (ws's maxPayload); everything else is Bun's default.
    maxPayloadLength: 65536,
    open(ws) {
      const data = ws.data;
      const old = sockets.get(data.id);
      if (old) {
        // A reconnect with the same id replaces the stale socket and keeps its rooms.
        old.data.replaced = true;
        data.rooms = old.data.rooms;
        old.close(4001, 'replaced by a newer connection');
        for (const room of data.rooms) ws.subscribe(room);
      } else {
        data.rooms = new Set();
      }
      sockets.set(data.id, ws);
      ws.subscribe(ALL);
      send(ws, { type: 'welcome', id: data.id });
    },
    message,
    close(ws) {
      const { id, rooms, replaced } = ws.data;
      if (replaced || sockets.get(id) !== ws) return;
      sockets.delete(id);
      for (const room of rooms) server.publish(room, JSON.stringify({ type: 'left', room, id }));
    },
  },
});

console.log(
  `bun serving ${tls ? 'wss' : 'ws'}://${HOST}:${server.port} bun=${Bun.version} revision=${Bun.revision} ` +
    `exe=${process.execPath} pid=${process.pid}`,
);
process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));
