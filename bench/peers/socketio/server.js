// The same chat rules on Socket.IO 4, the idiomatic way: rooms with
// `socket.join(room)` and `socket.to(room).emit(...)`, requests as events with
// acknowledgement callbacks. The mapping onto protocol v1 is in bench/README.md.
//
//   PORT=3102 node server.js            (or: node server.js 3102)
//   TLS_CERT=cert.pem TLS_KEY=key.pem   serve wss:// instead of ws://
//   REDIS_URL=redis://127.0.0.1:6390/0  several processes share rooms through
//                                       @socket.io/redis-adapter (bench/cluster.py)
// Clients connect with ?id=<id> (e.g. /socket.io/?EIO=4&transport=websocket&id=alice).
'use strict';

const { Server } = require('socket.io');
const { ID_RE, createServer, listen } = require('../serve.js');
const { checkRoom } = require('../v1.js');

const server = createServer();

const io = new Server(server, { serveClient: false, maxHttpBufferSize: 65536 });

// id -> socket
const sockets = new Map();

io.use((socket, next) => {
  const id = socket.handshake.query.id;
  if (!id) return next(new Error('missing id: connect with ?id=<id>'));
  if (typeof id !== 'string' || !ID_RE.test(id)) return next(new Error(`invalid id ${JSON.stringify(id)}: an id is 1-64 characters of A-Z a-z 0-9 _ . -`));
  next();
});

io.on('connection', (socket) => {
  const id = socket.handshake.query.id;
  const old = sockets.get(id);
  if (old) {
    // Replace the stale socket; the new one takes over its rooms.
    old.data.replaced = true;
    for (const room of old.rooms) if (room !== old.id) socket.join(room);
    old.emit('replaced', { code: 4001, reason: 'replaced by a newer connection' });
    old.disconnect(true);
  }
  sockets.set(id, socket);
  socket.data.id = id;
  socket.emit('welcome', { id });

  // Answer a request: the ack callback when the client asked for one (its
  // Socket.IO ack id is the v1 `ref`), else only errors, as an `error` event.
  const fail = (ack, code, message) => {
    if (typeof ack === 'function') ack({ error: { code, message } });
    else socket.emit('error', { code, message });
  };
  const ok = (ack) => {
    if (typeof ack === 'function') ack({ ok: true });
  };
  const request = (handler) => (msg, ack) => {
    if (typeof msg === 'function') [msg, ack] = [undefined, msg];
    if (msg === null || typeof msg !== 'object' || Array.isArray(msg)) {
      return fail(ack, 'bad-request', 'expected an object payload');
    }
    handler(msg, ack);
  };

  socket.on('join', request((msg, ack) => {
    const bad = checkRoom(msg);
    if (bad) return fail(ack, 'bad-request', bad);
    if (!socket.rooms.has(msg.room)) {
      socket.join(msg.room);
      io.to(msg.room).emit('joined', { room: msg.room, id });
    }
    ok(ack);
  }));

  socket.on('leave', request((msg, ack) => {
    const bad = checkRoom(msg);
    if (bad) return fail(ack, 'bad-request', bad);
    if (!socket.rooms.has(msg.room)) return fail(ack, 'not-in-room', `not a member of room \`${msg.room}\``);
    io.to(msg.room).emit('left', { room: msg.room, id });
    socket.leave(msg.room);
    ok(ack);
  }));

  socket.on('room', request((msg, ack) => {
    const bad = checkRoom(msg);
    if (bad) return fail(ack, 'bad-request', bad);
    if (!('data' in msg)) return fail(ack, 'bad-request', 'missing field `data` (any JSON value, null allowed)');
    if (!socket.rooms.has(msg.room)) return fail(ack, 'not-in-room', `not a member of room \`${msg.room}\``);
    socket.to(msg.room).emit('room', { room: msg.room, from: id, data: msg.data });
    ok(ack);
  }));

  socket.on('broadcast', request((msg, ack) => {
    if (!('data' in msg)) return fail(ack, 'bad-request', 'missing field `data` (any JSON value, null allowed)');
    socket.broadcast.emit('broadcast', { from: id, data: msg.data });
    ok(ack);
  }));

  socket.on('notice', request((msg, ack) => {
    if (typeof msg.to !== 'string') return fail(ack, 'bad-request', 'missing field `to`');
    if (!('data' in msg)) return fail(ack, 'bad-request', 'missing field `data` (any JSON value, null allowed)');
    const target = sockets.get(msg.to);
    if (!target || !target.connected) return fail(ack, 'target-closed', `\`${msg.to}\` is not online`);
    target.emit('notice', { from: id, data: msg.data });
    ok(ack);
  }));

  socket.on('ping', (msg, ack) => {
    if (typeof msg === 'function') ack = msg;
    socket.emit('pong', {});
    ok(ack);
  });

  socket.on('disconnecting', () => {
    if (socket.data.replaced) return;
    for (const room of socket.rooms) {
      if (room !== socket.id) socket.to(room).emit('left', { room, id });
    }
  });
  socket.on('disconnect', () => {
    if (sockets.get(id) === socket) sockets.delete(id);
  });
});

// Without REDIS_URL: the default in-memory adapter, as before (bench.py).
// With it: @socket.io/redis-adapter on two ioredis connections (one to
// publish, one subscribed), the setup its README gives; the server listens
// only once both are ready, and says so, so a benchmark column can prove it
// ran the adapter.
if (process.env.REDIS_URL) {
  const Redis = require('ioredis');
  const { createAdapter } = require('@socket.io/redis-adapter');
  const version = (name) => require(`${name}/package.json`).version;
  const pub = new Redis(process.env.REDIS_URL);
  const sub = pub.duplicate();
  const ready = (c) => new Promise((resolve, reject) => {
    c.once('ready', resolve);
    c.once('error', reject);
  });
  Promise.all([ready(pub), ready(sub)]).then(() => {
    // A lost connection and its return, in the log (bench/cluster.py's
    // Redis restart): ioredis reconnects by itself and subscribes again.
    for (const [name, c] of [['pub', pub], ['sub', sub]]) {
      c.on('error', (e) => console.error(`${new Date().toISOString()} socketio redis ${name}: ${e.message}`));
      c.on('ready', () => console.log(`${new Date().toISOString()} socketio redis ${name}: ready again`));
    }
    io.adapter(createAdapter(pub, sub));
    console.log(`socketio redis adapter on: ${process.env.REDIS_URL} ` +
      `(@socket.io/redis-adapter ${version('@socket.io/redis-adapter')}, ioredis ${version('ioredis')}, ` +
      `adapter ${io.of('/').adapter.constructor.name}) pid=${process.pid}`);
    listen(server, 'socketio');
  }, (e) => {
    console.error(`socketio: cannot reach Redis at ${process.env.REDIS_URL}: ${e.message}`);
    process.exit(1);
  });
} else {
  listen(server, 'socketio');
}
