// Scenarios run through every transport: each takes the test context and
// `make(options)`, which returns a client of the transport under test
// (closed when the test ends). The other party, bob, is always the Node build.
import assert from 'node:assert/strict';
import { Switchboard as NodeSwitchboard } from '../dist/esm/index.js';
import { SECRET, range, startServer, states, tcpProxy, token, waitFor, within } from './helpers.mjs';

function peer(t, url, id, opts = {}) {
  const sb = new NodeSwitchboard({ url, id, transport: 'node', ...opts });
  t.after(() => sb.close());
  return sb;
}

/** Every call of the API, once. */
export async function everyCall(t, make) {
  const server = await startServer(t, ['--stored-notices-per-id', '2']);
  const alice = make({ url: server.url, id: 'alice' });
  const bob = peer(t, server.url, 'bob');

  // A request made before connect() has nothing to wait for.
  await assert.rejects(alice.online(['bob']), { name: 'SwitchboardError', code: 'closed' });
  assert.equal(alice.state, 'closed');

  const seen = states(alice);
  const welcome = await alice.connect();
  assert.equal(welcome.id, 'alice');
  assert.equal(welcome.resumed, false);
  assert.equal(typeof welcome.session, 'string');
  assert.equal(alice.state, 'open');
  assert.equal(alice.id, 'alice');
  assert.equal(alice.session, welcome.session);
  assert.deepEqual(seen.map((s) => s.state), ['connecting', 'open']);
  assert.equal(await alice.connect(), welcome, 'connect() when open resolves with the welcome');
  await bob.connect();

  const lobby = alice.room('lobby');
  assert.equal(alice.room('lobby'), lobby, 'one handle per room name');
  const selfJoined = waitFor(lobby, 'joined', (e) => e.id === 'alice');
  const ack = await lobby.join();
  assert.equal(typeof ack.epoch, 'string');
  assert.equal(ack.offset, 0);
  assert.deepEqual(await selfJoined, { room: 'lobby', id: 'alice' });
  assert.equal(lobby.joined, true);

  const bobJoined = waitFor(lobby, 'joined', (e) => e.id === 'bob');
  await bob.room('lobby').join();
  await bobJoined;

  // room messages, both ways
  const hi = waitFor(lobby, 'message');
  await bob.room('lobby').send({ text: 'hi' });
  assert.deepEqual(await hi, { room: 'lobby', from: 'bob', data: { text: 'hi' }, offset: 1 });
  const back = waitFor(bob.room('lobby'), 'message');
  assert.equal(await lobby.send('hello'), undefined);
  assert.deepEqual(await back, { room: 'lobby', from: 'alice', data: 'hello', offset: 2 });
  assert.equal(lobby.offset, 1, 'own messages do not come back');

  // history and presence
  const h = await lobby.history({ limit: 10 });
  assert.equal(h.room, 'lobby');
  assert.equal(h.epoch, ack.epoch);
  assert.deepEqual(h.messages.map((m) => [m.offset, m.from, m.data]), [
    [1, 'bob', { text: 'hi' }],
    [2, 'alice', 'hello'],
  ]);
  const older = await lobby.history({ limit: 1, before: 2 });
  assert.deepEqual(older.messages.map((m) => m.offset), [1]);
  assert.deepEqual(await lobby.members(), { ids: ['alice', 'bob'], count: 2 });
  assert.deepEqual(await alice.online(['bob', 'nobody', 'alice']), ['bob', 'alice']);

  // notices: live, stored, refused
  const psst = waitFor(bob, 'notice');
  assert.deepEqual(await alice.notice('bob', { text: 'psst' }), {});
  assert.deepEqual(await psst, { from: 'alice', data: { text: 'psst' } });
  await assert.rejects(alice.notice('carol', 'are you there?'), (e) => {
    assert.equal(e.name, 'SwitchboardError');
    assert.equal(e.code, 'target-closed');
    assert.match(e.message, /carol/);
    return true;
  });
  for (const n of [1, 2, 3]) assert.deepEqual(await alice.notice('carol', { n }, { store: true }), { stored: true });
  const carol = peer(t, server.url, 'carol');
  const carolGot = [];
  carol.on('notice', (n) => carolGot.push(n));
  const dropped = waitFor(carol, 'notices-dropped');
  const lastNotice = waitFor(carol, 'notice', (n) => n.data.n === 3);
  await carol.connect();
  assert.deepEqual(await dropped, { count: 1 });
  await lastNotice;
  assert.deepEqual(carolGot.map((n) => n.data.n), [2, 3]);
  assert.ok(carolGot.every((n) => n.from === 'alice' && typeof n.stored_at === 'string'));

  // broadcast
  const bc = waitFor(bob, 'broadcast');
  assert.equal(await alice.broadcast({ text: 'to all' }), undefined);
  assert.deepEqual(await bc, { from: 'alice', data: { text: 'to all' } });

  // any request; server errors reject with the server's code
  const pong = await alice.request({ type: 'ping' });
  assert.equal(pong.type, 'ack');
  await assert.rejects(alice.request({ type: 'dance' }), { code: 'unknown-type' });
  await assert.rejects(alice.room('garden').send('hi'), { code: 'not-in-room' });

  // leave
  const bobSeesLeft = waitFor(bob.room('lobby'), 'left', (e) => e.id === 'alice');
  const selfLeft = waitFor(lobby, 'left', (e) => e.id === 'alice');
  assert.equal(await lobby.leave(), undefined);
  await selfLeft;
  await bobSeesLeft;
  assert.equal(lobby.joined, false);
  await assert.rejects(lobby.members(), { code: 'not-in-room' });
  await assert.rejects(lobby.leave(), { code: 'not-in-room' });

  // close: pending and later requests are rejected, state closed
  const inFlight = alice.online(['bob']);
  const closed = waitFor(alice, 'state', (s) => s.state === 'closed');
  alice.close();
  await assert.rejects(inFlight, { code: 'closed' });
  const s = await closed;
  assert.equal(s.code, 1000);
  assert.equal(s.error.code, 'closed');
  await assert.rejects(alice.online(['bob']), { code: 'closed' });
}

/** An abrupt TCP drop while bob keeps sending: alice sees every message once,
 *  in order. `resumed`: the server holds the session (resume); otherwise it
 *  does not (--resume-window-secs 0) and the re-join with `since` recovers. */
export async function dropMidConversation(t, make, { resumed }) {
  const server = await startServer(t, ['--messages-per-sec', '0', ...(resumed ? [] : ['--resume-window-secs', '0'])]);
  const proxy = await tcpProxy(t, server.port);
  // The backoff gives the server a moment to see the drop (so the id is held
  // when alice comes back); it is not needed for correctness.
  const alice = make({ url: proxy.url, id: 'alice', backoff: { initialMs: 200, maxMs: 400 } });
  const bob = peer(t, server.url, 'bob');
  await alice.connect();
  await bob.connect();
  const lobby = alice.room('lobby');
  const other = alice.room('other');
  await lobby.join();
  await other.join();
  await bob.room('lobby').join();
  await bob.room('other').join();
  const got = [];
  const gotOther = [];
  lobby.on('message', (m) => got.push(m));
  other.on('message', (m) => gotOther.push(m.data));
  const seen = states(alice);
  const welcomes = [];
  alice.on('welcome', (w) => welcomes.push(w));
  const failed = [];
  lobby.on('recovery-failed', (e) => failed.push(e));

  // alice's own message is never delivered back to her, not even when a
  // recovering join replays the room (resumed:false)
  await other.send('mine');
  const N = 80;
  const CUT = 25;
  const last = waitFor(lobby, 'message', (m) => m.data.n === N, 20000);
  const otherGot = waitFor(other, 'message', () => true, 20000);
  const back = waitFor(alice, 'welcome', () => true, 20000);
  const notices = [];
  alice.on('notice', (n) => notices.push(n.data));
  const noticed = waitFor(alice, 'notice', () => true, 20000);
  for (let n = 1; n <= N; n++) {
    if (n === CUT) {
      const away = resumed
        ? waitFor(alice, 'state', (s) => s.state === 'resuming')
        : waitFor(bob.room('lobby'), 'left', (e) => e.id === 'alice'); // no hold: she leaves at once
      proxy.cut();
      await away;
      // A notice has no history: it reaches alice if the server holds it
      // for her (resume) or stores it (no hold). Either way: once.
      const ack = await bob.notice('alice', 'while you were away', { store: true });
      if (!resumed) assert.deepEqual(ack, { stored: true });
    }
    // not awaited one by one: bob keeps talking while alice is away
    const sent = bob.room('lobby').send({ n });
    if (n % 10 === 0) await sent;
    if (n === CUT + 5) await bob.room('other').send('while away');
  }
  const w = await back;
  assert.equal(w.resumed, resumed, `welcome.resumed after the drop`);
  await last;
  assert.deepEqual(got.map((m) => m.data.n), range(1, N), 'every message once, in order');
  assert.deepEqual(got.map((m) => m.offset), range(1, N));
  assert.equal(lobby.offset, N);
  assert.deepEqual(failed, []);
  // the second room recovered too
  await otherGot;
  await noticed;
  assert.deepEqual(notices, ['while you were away']);
  assert.deepEqual(gotOther, ['while away']);
  assert.equal(welcomes.length, 1);
  // the state went from open to resuming (the drop, 1006) and back to open
  const drop = seen.find((s) => s.state === 'resuming');
  assert.ok(drop, 'a resuming state: ' + JSON.stringify(seen));
  assert.equal(drop.code, 1006);
  assert.equal(seen[seen.length - 1].state, 'open');
  assert.equal(alice.session, w.session);
  // and the conversation goes on
  assert.deepEqual(await alice.room('lobby').members(), { ids: ['alice', 'bob'], count: 2 });
}

/** A `since` the server can no longer serve: `recovery-failed`, then live again. */
export async function recoveryFailed(t, make) {
  const server = await startServer(t, ['--messages-per-sec', '0', '--resume-window-secs', '0', '--max-recover', '3']);
  const proxy = await tcpProxy(t, server.port);
  // A long backoff: the test wakes the reconnect itself with connect().
  const alice = make({ url: proxy.url, id: 'alice', backoff: { initialMs: 60000, maxMs: 60000 } });
  const bob = peer(t, server.url, 'bob');
  await alice.connect();
  await bob.connect();
  const lobby = alice.room('lobby');
  await lobby.join();
  await bob.room('lobby').join();
  const dropped = waitFor(alice, 'state', (s) => s.state === 'resuming');
  const gone = waitFor(bob.room('lobby'), 'left', (e) => e.id === 'alice'); // no hold: she leaves at once
  proxy.cut();
  await dropped;
  await gone;
  for (let n = 1; n <= 5; n++) await bob.room('lobby').send({ n });
  const failed = waitFor(lobby, 'recovery-failed');
  const w = await alice.connect(); // wakes the reconnect now
  assert.equal(w.resumed, false);
  const f = await failed;
  assert.deepEqual(f.since, { epoch: f.epoch, offset: 0 });
  assert.equal(f.offset, 5);
  assert.equal(f.room, 'lobby');
  // what it cannot replay is in history (the app reloads from there)
  const h = await lobby.history();
  assert.deepEqual(h.messages.map((m) => m.data.n), [1, 2, 3, 4, 5]);
  const live = waitFor(lobby, 'message');
  await bob.room('lobby').send({ n: 6 });
  assert.deepEqual((await live).data, { n: 6 });
}

/** 4001: another connection took the id: closed, no reconnect. */
export async function replaced(t, make) {
  const server = await startServer(t);
  const proxy = await tcpProxy(t, server.port);
  const alice = make({ url: proxy.url, id: 'alice', backoff: { initialMs: 10, maxMs: 20 } });
  await alice.connect();
  const pending = alice.online(['alice']).then(
    () => 'answered',
    (e) => e.code,
  );
  const closed = waitFor(alice, 'state', (s) => s.state === 'closed');
  // Each state is also an event of its own name.
  const closedByName = waitFor(alice, 'closed');
  const newer = peer(t, server.url, 'alice');
  await newer.connect();
  const s = await closed;
  assert.equal(s.code, 4001);
  assert.equal(s.error.code, 'replaced');
  assert.deepEqual(await closedByName, s);
  assert.ok(['answered', 'connection-lost'].includes(await pending));
  await assert.rejects(alice.online(['alice']), { code: 'closed' });
  // No reconnect: nothing comes through the proxy again and the newer
  // connection stays (a bounded wait: an absence cannot be awaited).
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(proxy.accepted, 1);
  assert.equal(alice.state, 'closed');
  assert.equal(newer.state, 'open');
  assert.deepEqual(await newer.online(['alice']), ['alice']);
}

/** Signed tokens: a good one (a function, called before every connect),
 *  and a refused one: 401 → closed with `unauthorized`, no reconnect loop.
 *  `knowsStatus`: the transport sees the 401 itself (ws); otherwise the
 *  client probes with a plain GET of the same URL, which the server answers
 *  with the status the upgrade got. */
export async function signedTokens(t, make, { knowsStatus }) {
  const server = await startServer(t, ['--auth-secret', SECRET]);
  const proxy = await tcpProxy(t, server.port);

  let calls = 0;
  const good = make({
    url: proxy.url,
    token: async () => {
      calls++;
      return token('alice');
    },
    backoff: { initialMs: 10, maxMs: 20 },
  });
  const w = await good.connect();
  assert.equal(w.id, 'alice');
  assert.equal(good.id, 'alice');
  assert.equal(calls, 1);
  const back = waitFor(good, 'welcome');
  proxy.cut();
  await back;
  assert.equal(calls, 2, 'the token function is called before every connect');
  good.close();

  const bad = make({ url: proxy.url, id: 'mallory', token: token('someone-else'), backoff: { initialMs: 10, maxMs: 20 } });
  const before = proxy.accepted;
  const seen = states(bad);
  const closed = waitFor(bad, 'state', (s) => s.state === 'closed');
  await assert.rejects(bad.connect(), (e) => {
    assert.equal(e.code, 'unauthorized');
    assert.equal(e.status, 401);
    if (knowsStatus) assert.match(e.message, /does not match/, 'the server says why');
    return true;
  });
  const s = await closed;
  assert.equal(s.error.code, 'unauthorized');
  const after = proxy.accepted;
  assert.ok(after - before <= 2, 'one attempt (and one probe)');
  await new Promise((r) => setTimeout(r, 300)); // no reconnect loop (a bounded wait for an absence)
  assert.equal(proxy.accepted, after);
  assert.deepEqual(seen.map((s) => s.state), ['connecting', 'closed']);

  // an expired token is refused alike
  const expired = make({ url: server.url, id: 'alice', token: token('alice', -3600) });
  await assert.rejects(expired.connect(), { code: 'unauthorized' });
}

/** The app-level heartbeat: a server that stops answering (SIGSTOP) is
 *  detected by the missing pong, the socket replaced, nothing lost. */
export async function heartbeat(t, make) {
  const server = await startServer(t);
  const alice = make({ url: server.url, id: 'alice', pingIntervalMs: 150, pongTimeoutMs: 300, backoff: { initialMs: 20, maxMs: 50 } });
  const bob = peer(t, server.url, 'bob');
  await alice.connect();
  await bob.connect();
  await alice.room('lobby').join();
  await bob.room('lobby').join();
  const got = [];
  alice.room('lobby').on('message', (m) => got.push(m.data));
  // a few heartbeats pass without incident
  let pongs = 0;
  const onFrame = (f) => f.type === 'pong' && pongs++;
  alice.on('frame', onFrame);
  await waitFor(alice, 'frame', () => pongs >= 3);
  alice.off('frame', onFrame);
  assert.equal(alice.state, 'open');

  const dead = waitFor(alice, 'state', (s) => s.state === 'resuming', 10000);
  await server.pause();
  t.after(() => server.resume());
  const s = await dead;
  assert.equal(s.code, 4000);
  assert.equal(s.reason, 'no pong');
  const sent = bob.room('lobby').send('during the stop'); // waits in bob's socket
  const back = waitFor(alice, 'welcome', () => true, 15000);
  const msg = waitFor(alice.room('lobby'), 'message', () => true, 15000);
  server.resume();
  await back;
  await sent;
  await msg;
  assert.deepEqual(got, ['during the stop']);
  assert.equal(alice.state, 'open');
  assert.deepEqual((await alice.room('lobby').members()).ids, ['alice', 'bob']);
}

/** Requests: timeout, rejected on a drop, queued before open. */
export async function requests(t, make) {
  const server = await startServer(t);
  const proxy = await tcpProxy(t, server.port);
  const alice = make({ url: proxy.url, id: 'alice', requestTimeoutMs: 400, backoff: { initialMs: 10, maxMs: 20 } });

  // queued while connecting, sent after the welcome
  const order = [];
  alice.on('frame', (f) => order.push(f.type));
  const connected = alice.connect();
  assert.equal(alice.state, 'connecting');
  const early = alice.online(['alice', 'bob']);
  const earlyJoin = alice.room('lobby').join();
  assert.deepEqual(await early, ['alice']);
  await earlyJoin;
  await connected;
  assert.equal(order[0], 'welcome', 'nothing is answered before the welcome');
  assert.ok(order.indexOf('online') > 0);

  // rejected when the connection drops before the answer
  proxy.hold(true); // what alice sends no longer reaches the server
  const lost = alice.online(['alice']);
  const dropped = waitFor(alice, 'state', (s) => s.state === 'resuming');
  proxy.cut();
  await assert.rejects(lost, (e) => {
    assert.equal(e.code, 'connection-lost');
    assert.match(e.message, /1006/);
    return true;
  });
  await dropped;
  // queued while resuming
  const queued = alice.online(['alice']);
  assert.deepEqual(await queued, ['alice']);
  assert.equal(alice.state, 'open');

  // timeout: the server stops answering
  await server.pause();
  t.after(() => server.resume());
  const started = Date.now();
  await assert.rejects(alice.online(['alice']), (e) => {
    assert.equal(e.code, 'timeout');
    return true;
  });
  assert.ok(Date.now() - started >= 350);
  server.resume();
  assert.deepEqual(await alice.online(['alice']), ['alice']);

  // the queue is bounded
  const q = make({ url: server.url, id: 'q', maxQueue: 2 });
  q.connect();
  const a = q.online(['q']);
  const b = q.online(['q']);
  await assert.rejects(q.online(['q']), { code: 'queue-full' });
  assert.deepEqual(await a, ['q']);
  assert.deepEqual(await b, ['q']);
}

/** Counts the `rate-limited` errors the server sends a client. */
function refusals(sb) {
  const seen = { count: 0 };
  sb.on('frame', (f) => f.type === 'error' && f.code === 'rate-limited' && seen.count++);
  return seen;
}
const names = (n, prefix = 'r') => range(1, n).map((i) => prefix + i);

/** 30 rooms joined at once, then each room's members asked at once (what a
 *  chat page showing member lists does), with the server's default limits:
 *  everything answered, and the server never had to refuse anything. */
export async function manyRooms(t, make) {
  const server = await startServer(t);
  const alice = make({ url: server.url, id: 'alice' });
  const refused = refusals(alice);
  await alice.connect();
  const rooms = names(30).map((n) => alice.room(n));
  const acks = await Promise.all(rooms.map((r) => r.join()));
  assert.ok(acks.every((a) => a.offset === 0));
  const members = await Promise.all(rooms.map((r) => r.members()));
  assert.ok(members.every((m) => m.count === 1 && m.ids[0] === 'alice'));
  assert.equal(refused.count, 0, 'the client stayed within the limits');
}

/** A TCP cut in 30 rooms at once, with frames the server had already written
 *  lost in every one of them: after the resume, each room's gap is read from
 *  `history` (30 queries, over the server's burst of 20) and every message
 *  is delivered once, in order. `pace: false`: the client believes the
 *  server allows ten times more, so the server refuses some gap fills and
 *  they are retried. */
export async function gapsInManyRooms(t, make, { pace }) {
  const server = await startServer(t);
  const proxy = await tcpProxy(t, server.port);
  const limits = pace ? undefined : { queriesPerSec: 50, queriesBurst: 200 };
  const alice = make({ url: proxy.url, id: 'alice', limits, backoff: { initialMs: 200, maxMs: 400 } });
  const bob = peer(t, server.url, 'bob');
  await alice.connect();
  await bob.connect();
  const list = names(30);
  await Promise.all(list.map((n) => alice.room(n).join()));
  await Promise.all(list.map((n) => bob.room(n).join()));
  const got = {};
  const failed = [];
  for (const n of list) {
    got[n] = [];
    alice.room(n).on('message', (m) => got[n].push([m.offset, m.data]));
    alice.room(n).on('recovery-failed', (e) => failed.push(e));
  }
  const refused = refusals(alice);
  const errors = [];
  alice.on('error', (e) => errors.push(e));
  let fills = 0;
  alice.on('frame', (f) => f.type === 'history' && fills++);

  // What the server writes now never reaches alice: two messages a room.
  proxy.mute(true);
  for (const k of [1, 2]) await Promise.all(list.map((n) => bob.room(n).send(k)));
  await proxy.discarded((text) => (text.match(/"type":"room"/g) || []).length === 60);
  const away = waitFor(alice, 'state', (s) => s.state === 'resuming');
  const back = waitFor(alice, 'welcome', () => true, 20000);
  const all = Promise.all(list.map((n) => waitFor(alice.room(n), 'message', (m) => m.data === 3, 30000)));
  proxy.cut();
  await away;
  // While she is away (or, if she is back already, live): after the gap.
  await Promise.all(list.map((n) => bob.room(n).send(3)));
  assert.equal((await back).resumed, true);
  await all;
  for (const n of list) assert.deepEqual(got[n], [[1, 1], [2, 2], [3, 3]], `room ${n}: every message once, in order`);
  assert.deepEqual(failed, []);
  assert.deepEqual(errors, []);
  assert.equal(fills, 30, "each room's gap was read from history");
  if (pace) assert.equal(refused.count, 0, 'the gap fills were paced within the query limit');
  else assert.ok(refused.count > 0, 'unpaced, the server refused some gap fills (and they were retried)');
}

/** A burst of queries past a tight server limit: refused ones are sent again
 *  after the server's `retry_after_ms`, and all resolve. Without retries,
 *  the refusal reaches the caller. */
export async function retriedQueries(t, make) {
  const server = await startServer(t, ['--queries-per-sec', '2', '--queries-burst', '2']);
  const alice = make({ url: server.url, id: 'alice' });
  const refused = refusals(alice);
  await alice.connect();
  const answers = await Promise.all(range(1, 10).map(() => alice.online(['alice', 'nobody'])));
  assert.ok(answers.every((a) => a.length === 1 && a[0] === 'alice'));
  assert.ok(refused.count > 0, 'the server refused some (the client paces at its default 5/s)');

  const eager = make({ url: server.url, id: 'eager', maxRetries: 0 });
  await eager.connect();
  const results = await Promise.allSettled(range(1, 10).map(() => eager.online(['eager'])));
  const rejected = results.filter((r) => r.status === 'rejected').map((r) => r.reason);
  assert.ok(rejected.length > 0 && rejected.length < 10, `${rejected.length} of 10 refused`);
  for (const e of rejected) {
    assert.equal(e.code, 'rate-limited');
    assert.equal(typeof e.retryAfterMs, 'number');
  }
}

/** Frames past a tight message limit: every room message refused is sent
 *  again after `retry_after_ms` and handled once. */
export async function retriedMessages(t, make) {
  const server = await startServer(t, ['--messages-per-sec', '5', '--messages-burst', '5']);
  const alice = make({ url: server.url, id: 'alice' });
  const bob = peer(t, server.url, 'bob');
  const refused = refusals(alice);
  await alice.connect();
  await bob.connect();
  await alice.room('lobby').join();
  await bob.room('lobby').join();
  const got = [];
  bob.room('lobby').on('message', (m) => got.push(m.data));
  const N = 12;
  const last = waitFor(bob.room('lobby'), 'message', () => got.length === N, 20000);
  await Promise.all(range(1, N).map((n) => alice.room('lobby').send(n)));
  await last;
  assert.deepEqual(got.slice().sort((a, b) => a - b), range(1, N), 'each message handled once');
  assert.ok(refused.count > 0, 'the server refused some (the client paces at its default 50/s)');
}

/** The client paces queries at its `limits`; waiting for that is not
 *  counted by `requestTimeoutMs`. */
export async function pacing(t, make) {
  const server = await startServer(t);
  const alice = make({ url: server.url, id: 'alice', requestTimeoutMs: 500, limits: { queriesPerSec: 2, queriesBurst: 1 } });
  const refused = refusals(alice);
  await alice.connect();
  const started = Date.now();
  const times = await Promise.all(range(1, 4).map(() => alice.online(['alice']).then(() => Date.now() - started)));
  // 90 % of 2 a second, one at once: the 4th after 3 × 556 ms.
  assert.ok(times[3] >= 1600, `paced: answered after ${times.join(', ')} ms`);
  assert.equal(refused.count, 0);
}

export { within };
