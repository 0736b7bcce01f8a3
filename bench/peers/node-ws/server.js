// A chat room on the `ws` package, written the way the classic WeChat
// mini-program tutorial does it: a `sockets` map keyed by the id from the URL,
// `wss.clients.forEach` for broadcast, JSON.stringify on every send.
// It speaks Switchboard's protocol v1 (docs/PROTOCOL.md) closely enough that
// the benchmark's scenarios behave the same against it.
//
//   PORT=3101 node server.js            (or: node server.js 3101)
//   TLS_CERT=cert.pem TLS_KEY=key.pem   serve wss:// instead of ws://
'use strict';

const WebSocket = require('ws');
const { ID_RE, createServer, listen } = require('../serve.js');
const { request, checkRoom, replies } = require('../v1.js');

const server = createServer();

// id -> ws
const sockets = {};
// room -> Set of ids
const rooms = {};
// id -> Set of rooms
const roomsOf = {};

function idFromUrl(reqUrl) {
  const u = new URL(reqUrl, 'http://x');
  let id = null;
  if (u.pathname.startsWith('/ws/')) id = decodeURIComponent(u.pathname.slice(4));
  else if (u.pathname === '/ws') id = u.searchParams.get('id');
  else return { status: 404, reason: 'no such endpoint: connect to /ws/<id> or /ws?id=<id>' };
  if (id === '' && u.searchParams.get('id')) id = u.searchParams.get('id');
  if (!id) return { status: 400, reason: 'missing id: connect to /ws/<id> or /ws?id=<id>' };
  if (!ID_RE.test(id)) return { status: 400, reason: `invalid id ${JSON.stringify(id)}: an id is 1-64 characters of A-Z a-z 0-9 _ . -` };
  return { id };
}

const wss = new WebSocket.Server({
  server,
  maxPayload: 65536,
  verifyClient: (info, cb) => {
    const r = idFromUrl(info.req.url);
    if (r.id) cb(true);
    else cb(false, r.status, r.reason);
  },
});

function send(ws, msg) {
  if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(msg));
}

const { error, ack } = replies(send);

function leaveAll(id) {
  for (const room of roomsOf[id] || []) {
    const members = rooms[room];
    members.delete(id);
    if (members.size === 0) delete rooms[room];
    else members.forEach((m) => send(sockets[m], { type: 'left', room, id }));
  }
  delete roomsOf[id];
}

wss.on('connection', (ws, req) => {
  const { id } = idFromUrl(req.url);
  const old = sockets[id];
  if (old) {
    // A reconnect with the same id replaces the stale socket and keeps its rooms.
    old.replaced = true;
    old.close(4001, 'replaced by a newer connection');
  }
  sockets[id] = ws;
  ws.id = id;
  send(ws, { type: 'welcome', id });

  ws.on('message', (raw, isBinary) => {
    if (isBinary) return error(ws, undefined, 'bad-request', 'binary frames are not supported: send JSON text frames');
    const req = request(raw.toString());
    if (req.refused) return error(ws, ...req.refused);
    const { msg, ref } = req;

    switch (msg.type) {
      case 'join': {
        const bad = checkRoom(msg);
        if (bad) return error(ws, ref, 'bad-request', bad);
        const room = msg.room;
        if (!rooms[room]) rooms[room] = new Set();
        if (!rooms[room].has(id)) {
          rooms[room].add(id);
          (roomsOf[id] = roomsOf[id] || new Set()).add(room);
          rooms[room].forEach((m) => send(sockets[m], { type: 'joined', room, id }));
        }
        return ack(ws, ref);
      }
      case 'leave': {
        const bad = checkRoom(msg);
        if (bad) return error(ws, ref, 'bad-request', bad);
        const room = msg.room;
        if (!rooms[room] || !rooms[room].has(id)) return error(ws, ref, 'not-in-room', `not a member of room \`${room}\``);
        rooms[room].forEach((m) => send(sockets[m], { type: 'left', room, id }));
        rooms[room].delete(id);
        if (rooms[room].size === 0) delete rooms[room];
        roomsOf[id].delete(room);
        return ack(ws, ref);
      }
      case 'room': {
        const bad = checkRoom(msg);
        if (bad) return error(ws, ref, 'bad-request', bad);
        if (!('data' in msg)) return error(ws, ref, 'bad-request', 'missing field `data` (any JSON value, null allowed)');
        const room = msg.room;
        if (!rooms[room] || !rooms[room].has(id)) return error(ws, ref, 'not-in-room', `not a member of room \`${room}\``);
        rooms[room].forEach((m) => {
          if (m !== id) send(sockets[m], { type: 'room', room, from: id, data: msg.data });
        });
        return ack(ws, ref);
      }
      case 'broadcast': {
        if (!('data' in msg)) return error(ws, ref, 'bad-request', 'missing field `data` (any JSON value, null allowed)');
        wss.clients.forEach((client) => {
          if (client !== ws && client.readyState === WebSocket.OPEN) {
            client.send(JSON.stringify({ type: 'broadcast', from: id, data: msg.data }));
          }
        });
        return ack(ws, ref);
      }
      case 'notice': {
        if (!('to' in msg)) return error(ws, ref, 'bad-request', 'missing field `to`');
        if (typeof msg.to !== 'string') return error(ws, ref, 'bad-request', 'field `to` must be a string');
        if (!('data' in msg)) return error(ws, ref, 'bad-request', 'missing field `data` (any JSON value, null allowed)');
        const target = sockets[msg.to];
        if (!target || target.readyState !== WebSocket.OPEN) {
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
  });

  ws.on('close', () => {
    if (ws.replaced || sockets[id] !== ws) return;
    delete sockets[id];
    leaveAll(id);
  });
  ws.on('error', () => {});
});

listen(server, 'node-ws');
