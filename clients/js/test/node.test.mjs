// The Node build (ESM and CommonJS) over the `ws` package (Node 20 has no
// global WebSocket), against the real server.
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { test } from 'node:test';
import { Switchboard, SwitchboardError } from '../dist/esm/index.js';
import net from 'node:net';
import { startServer, waitFor } from './helpers.mjs';
import * as S from './scenarios.mjs';

const make = (t, extra = {}) => (opts) => {
  const sb = new Switchboard({ ...opts, ...extra });
  t.after(() => sb.close());
  return sb;
};

test('every call (auto transport: node)', (t) => S.everyCall(t, make(t)));
test('TCP drop mid-conversation, session resumed', (t) => S.dropMidConversation(t, make(t, { transport: 'node' }), { resumed: true }));
test('TCP drop mid-conversation, not held: re-join with since', (t) => S.dropMidConversation(t, make(t, { transport: 'node' }), { resumed: false }));
test('recovery-failed when the history cannot cover the gap', (t) => S.recoveryFailed(t, make(t)));
test('4001 replaced: closed, no reconnect', (t) => S.replaced(t, make(t)));
test('signed tokens; 401 seen at the handshake (ws unexpected-response)', (t) => S.signedTokens(t, make(t), { knowsStatus: true }));
test('heartbeat: a silent server is detected and the socket replaced', (t) => S.heartbeat(t, make(t)));
test('requests: queued before open, rejected on drop, timeout, bounded queue', (t) => S.requests(t, make(t)));
test('30 rooms joined at once and their members asked: within the default limits', (t) => S.manyRooms(t, make(t)));
test('a TCP cut with gaps in 30 rooms: filled from history, paced', (t) => S.gapsInManyRooms(t, make(t, { transport: 'node' }), { pace: true }));
test('a TCP cut with gaps in 30 rooms: filled from history, unpaced and retried', (t) => S.gapsInManyRooms(t, make(t, { transport: 'node' }), { pace: false }));
test('queries past a tight limit are retried after retry_after_ms', (t) => S.retriedQueries(t, make(t)));
test('frames past a tight limit are retried after retry_after_ms, each handled once', (t) => S.retriedMessages(t, make(t)));
test('queries are paced at the client\'s limits; pacing is not counted by the timeout', (t) => S.pacing(t, make(t)));

test('a 400 (bad id) is final too', async (t) => {
  const server = await startServer(t);
  const sb = make(t)({ url: server.url, id: 'not valid!', backoff: { initialMs: 10 } });
  await assert.rejects(sb.connect(), (e) => {
    assert.ok(e instanceof SwitchboardError);
    assert.equal(e.code, 'refused');
    assert.equal(e.status, 400);
    assert.match(e.message, /invalid id/);
    return true;
  });
  assert.equal(sb.state, 'closed');
});

test('options are checked', () => {
  assert.throws(() => new Switchboard({ url: 'ws://x' }), { code: 'bad-options' });
});

test('the CommonJS build works the same', async (t) => {
  const require = createRequire(import.meta.url);
  const cjs = require('../dist/cjs/index.js');
  assert.equal(typeof cjs.Switchboard, 'function');
  const server = await startServer(t);
  const sb = new cjs.Switchboard({ url: server.url, id: 'cjs' });
  t.after(() => sb.close());
  const w = await sb.connect();
  assert.equal(w.id, 'cjs');
  assert.deepEqual(await sb.online(['cjs']), ['cjs']);
  await assert.rejects(sb.room('r').members(), (e) => e instanceof cjs.SwitchboardError && e.code === 'not-in-room');
});

test('server errors without a request, and transport errors, are error events', async (t) => {
  // one frame a second: the heartbeat pings (sent without a ref) get refused
  const server = await startServer(t, ['--messages-per-sec', '1', '--messages-burst', '1']);
  const sb = make(t)({ url: server.url, id: 'pinger', pingIntervalMs: 20, pongTimeoutMs: 5000 });
  const err = waitFor(sb, 'error', (e) => e.code === 'rate-limited');
  await sb.connect();
  const e = await err;
  assert.ok(e instanceof SwitchboardError);
  assert.equal(typeof e.retryAfterMs, 'number');
  assert.equal(e.frame.type, 'error');
  sb.close();

  // nothing listens: each failed attempt is an error event and a state with the cause
  const nobody = await new Promise((r) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const port = s.address().port;
      s.close(() => r(port));
    });
  });
  const down = make(t)({ url: `ws://127.0.0.1:${nobody}`, id: 'x', backoff: { initialMs: 10, maxMs: 20 } });
  const failed = waitFor(down, 'error', (e) => e.code === 'transport');
  const state = waitFor(down, 'state', (s) => s.state === 'connecting' && s.code === 1006);
  down.connect();
  assert.match((await failed).message, /ECONNREFUSED/);
  assert.equal((await state).error.code, 'transport');
});

test('a handshake that never completes times out and is retried', async (t) => {
  const sockets = [];
  const hole = net.createServer((c) => sockets.push(c)); // accepts, never answers
  await new Promise((r) => hole.listen(0, '127.0.0.1', r));
  t.after(() => {
    sockets.forEach((c) => c.destroy());
    hole.close();
  });
  const sb = make(t)({ url: `ws://127.0.0.1:${hole.address().port}`, id: 'x', connectTimeoutMs: 200, backoff: { initialMs: 10, maxMs: 20 } });
  sb.connect();
  const s = await waitFor(sb, 'state', (s) => s.reason === 'connect timeout');
  assert.equal(s.state, 'connecting');
  assert.equal(s.code, 4000);
  await waitFor(sb, 'state', () => sockets.length >= 2); // it tries again
});

test('a token function that fails is retried, with an error event', async (t) => {
  const server = await startServer(t);
  let calls = 0;
  const sb = make(t)({
    url: server.url,
    id: 'tok',
    backoff: { initialMs: 10, maxMs: 20 },
    token: () => {
      if (++calls === 1) throw new Error('login service down');
      return 'unused-without-auth';
    },
  });
  const errors = [];
  sb.on('error', (e) => errors.push(e));
  const w = await sb.connect();
  assert.equal(w.id, 'tok');
  assert.equal(calls, 2);
  assert.equal(errors.length, 1);
  assert.equal(errors[0].code, 'token');
  assert.match(errors[0].message, /login service down/);
});
