// Cluster mode as the client sees it: a server on a redis-server of the
// test's own (Debian's, on a free port, no persistence), restarted under a
// connected client. The room's history starts again under a new epoch; the
// server says so with an `epoch` frame, and the client must take the new
// epoch's offset 1 (not drop it as "seen": its last offset was 3) and emit
// `recovery-failed`.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { Switchboard } from '../dist/esm/index.js';
import { balancer, freePort, range, startServer, waitFor } from './helpers.mjs';

const haveRedis = spawnSync('redis-server', ['--version']).status === 0;


/** redis-server on `port`, no persistence; resolves once it accepts. */
async function startRedis(t, port, dir) {
  const proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], { stdio: 'ignore' });
  t.after(() => proc.kill('SIGKILL'));
  for (let i = 0; i < 500; i++) {
    const up = await new Promise((res) => {
      const c = net.connect(port, '127.0.0.1', () => {
        c.end();
        res(true);
      });
      c.on('error', () => res(false));
    });
    if (up) return proc;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error('redis-server did not start');
}

async function stopRedis(proc) {
  const gone = new Promise((r) => proc.once('exit', r));
  proc.kill('SIGKILL');
  await gone;
}

test('Redis restarted without persistence: the new epoch is taken from offset 1, with recovery-failed', { skip: !haveRedis && 'no redis-server (make test installs it)' }, async (t) => {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'sb-js-redis-'));
  let redis = await startRedis(t, port, dir);
  const server = await startServer(t, ['--cluster', `redis://127.0.0.1:${port}/0`]);
  const make = (id) => {
    const sb = new Switchboard({ url: server.url, id });
    t.after(() => sb.close());
    return sb;
  };
  const alice = make('alice');
  const bob = make('bob');
  await alice.connect();
  await bob.connect();
  const lobby = alice.room('lobby');
  await lobby.join();
  await bob.room('lobby').join();
  const got = [];
  lobby.on('message', (m) => got.push(m));
  for (const n of [1, 2, 3]) {
    const seen = waitFor(lobby, 'message', (m) => m.data.n === n);
    await bob.room('lobby').send({ n });
    await seen;
  }
  const oldEpoch = lobby.epoch;
  assert.equal(lobby.offset, 3);

  await stopRedis(redis);
  redis = await startRedis(t, port, dir);
  const failed = waitFor(lobby, 'recovery-failed');
  const after = waitFor(lobby, 'message', (m) => m.data.n === 'after');
  // Refused `unavailable` until the server has its connection again.
  for (let i = 0; ; i++) {
    try {
      await bob.room('lobby').send({ n: 'after' });
      break;
    } catch (e) {
      assert.equal(e.code, 'unavailable', String(e));
      assert.ok(i < 200, 'never kept again');
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  const m = await after;
  assert.equal(m.offset, 1);
  const f = await failed;
  assert.deepEqual(f.since, { epoch: oldEpoch, offset: 3 });
  assert.notEqual(f.epoch, oldEpoch);
  assert.equal(lobby.epoch, f.epoch);
  assert.equal(lobby.offset, 1);
  assert.deepEqual(got.map((x) => x.data.n), [1, 2, 3, 'after']);
});

test('a node drained with SIGTERM hands its clients over: they come back at once on the other node, resume, and lose nothing', { skip: !haveRedis && 'no redis-server (make test installs it)' }, async (t) => {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'sb-js-redis-'));
  await startRedis(t, port, dir);
  const cluster = ['--cluster', `redis://127.0.0.1:${port}/0`];
  const a = await startServer(t, [...cluster, '--node-id', 'a', '--drain-secs', '2']);
  const b = await startServer(t, [...cluster, '--node-id', 'b']);
  // Behind one address, as in production: node a first while it accepts.
  const lb = await balancer(t, [a.port, b.port]);
  const alice = new Switchboard({ url: lb.url, id: 'alice', restartJitterMs: 200 });
  const bob = new Switchboard({ url: b.url, id: 'bob' });
  t.after(() => {
    alice.close();
    bob.close();
  });
  const welcomes = [];
  alice.on('welcome', (w) => welcomes.push(w));
  const codes = [];
  alice.on('state', (e) => e.code !== undefined && codes.push(e.code));
  await alice.connect();
  await bob.connect();
  const lobby = alice.room('lobby');
  await lobby.join();
  await bob.room('lobby').join();
  const got = [];
  lobby.on('message', (m) => got.push(m.data.n));
  const notices = [];
  alice.on('notice', (m) => notices.push(m.data.n));

  let n = 0;
  const send = async () => {
    await bob.room('lobby').send({ n });
    await bob.notice('alice', { n });
    n++;
  };
  for (let i = 0; i < 10; i++) await send();
  process.kill(a.pid, 'SIGTERM');
  // Traffic goes on while alice is told to go, comes back and resumes.
  while (!welcomes.some((w) => w.resumed)) {
    await send();
    assert.ok(n < 100000, 'alice never resumed');
  }
  for (let i = 0; i < 10; i++) await send();
  const last = n - 1;
  if (!got.includes(last)) await waitFor(lobby, 'message', (m) => m.data.n === last);
  if (!notices.includes(last)) await waitFor(alice, 'notice', (m) => m.data.n === last);
  assert.deepEqual(got, range(0, last));
  assert.deepEqual(notices, range(0, last));
  assert.ok(codes.includes(1012), `closes seen: ${codes}`);
  assert.equal(welcomes.length, 2);
  // Node a exits by itself once its clients have gone.
  const { code } = await a.exited;
  assert.equal(code, 0);
});
