// The sample's own app.js and pages/chat/chat.js, run under node through the
// wx shim (test/harness.mjs), against the real switchboard binary with signed
// tokens and a stand-in login backend. The WeChat runtime does not run here.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Switchboard as NodeSwitchboard } from '../../js/dist/esm/index.js';
import { SECRET, mintToken, range, startServer, waitFor } from '../../js/test/helpers.mjs';
import { early, launch, stats, tokenBackend } from './harness.mjs';

const token = (sub) => mintToken(SECRET, { sub, exp: Math.floor(Date.now() / 1000) + 600 });

/** Another user, on the Node build of the same library. */
async function peer(t, server, id) {
  const sb = new NodeSwitchboard({ url: server.url, token: token(id), transport: 'node' });
  t.after(() => sb.close());
  await sb.connect();
  return sb;
}

/** A server with signed tokens, the login backend, and the app launched as `user`. */
async function setup(t, { user = 'alice', args = [], client = {} } = {}) {
  const server = await startServer(t, ['--auth-secret', SECRET, ...args]);
  const backend = await tokenBackend(t, SECRET);
  const sockets = stats.sockets;
  const ctx = launch(t, { user, config: { SERVER_URL: server.url, LOGIN_URL: backend.url, DEFAULT_ROOM: 'lobby', client } });
  return { server, backend, ctx, app: ctx.app, sockets: () => stats.sockets - sockets };
}

/** The SocketTask App opened last: destroying its TCP socket is an abrupt drop (no close frame). */
const lastTask = () => stats.tasks[stats.tasks.length - 1];
const fromBob = (d) => d.messages.filter((m) => m.from === 'bob');

test.afterEach(() => assert.equal(early.sends, 0, 'nothing is sent before the socket is open'));

test('login, token, connected; a room both ways; members; a second page shares the socket', async (t) => {
  const { backend, server, ctx, app, sockets } = await setup(t);
  const page = ctx.open('pages/chat/chat', {});
  await page.loaded; // the join was queued until the welcome
  await page.until((d) => d.state === 'open' && d.joined && d.me === 'alice', 10000, 'open and joined');
  assert.equal(page.data.stateText, 'Connected');
  assert.equal(page.data.room, 'lobby');
  assert.equal(ctx.logins, 1, 'one wx.login');
  assert.deepEqual(backend.seen, [{ method: 'POST', code: backend.seen[0].code, user: 'alice' }]);
  assert.equal(app.globalData.id, 'alice', 'the id is the token’s sub');
  assert.ok(page.history.some((d) => d.state === 'connecting'), 'the connecting state was shown');

  const bob = await peer(t, server, 'bob');
  const seesAlice = waitFor(bob.room('lobby'), 'message');
  await bob.room('lobby').join();
  await page.until((d) => d.members.includes('bob'), 5000, 'bob in the members');
  assert.equal(page.data.memberCount, 2);

  await bob.room('lobby').send({ text: 'hi alice' });
  await page.until((d) => d.messages.length === 1);
  assert.deepEqual(page.data.messages, [{ key: 'm1', from: 'bob', text: 'hi alice', offset: 1, mine: false }]);

  page.onDraft({ detail: { value: 'hello bob' } });
  await page.onSend();
  assert.deepEqual((await seesAlice).data, { text: 'hello bob' });
  assert.deepEqual(
    page.data.messages.map((m) => [m.from, m.text, m.mine]),
    [
      ['bob', 'hi alice', false],
      ['alice', 'hello bob', true],
    ],
  );
  assert.equal(page.data.draft, '');

  await page.onMembers();
  assert.deepEqual(page.data.members, ['alice', 'bob']);

  // wx.navigateTo a second page: the same connection, no second socket, no 4001.
  page.onOtherRoom({ detail: { value: 'garden' } });
  page.onOpenRoom();
  const second = ctx.pages[1];
  assert.equal(second.route, 'pages/chat/chat');
  await second.loaded;
  await second.until((d) => d.joined && d.room === 'garden');
  assert.equal(sockets(), 1, 'one socket for the whole app');
  assert.equal(app.sb.state, 'open');
  await bob.room('garden').join();
  await bob.room('garden').send('in the garden');
  await second.until((d) => d.messages.length === 1);
  assert.equal(second.data.messages[0].text, 'in the garden');
  assert.equal(page.data.messages.length, 2, 'the first page shows its own room only');
  // both pages see the connection's state
  assert.equal(second.data.state, 'open');

  // leave, from the second page
  const bobSeesLeft = waitFor(bob.room('garden'), 'left', (e) => e.id === 'alice');
  await second.onLeave();
  await bobSeesLeft;
  assert.equal(second.data.joined, false);
  assert.equal(second.data.status, 'left garden');
  assert.equal(page.data.joined, true);
  assert.equal(sockets(), 1);
});

test('notices: stored for alice while she was offline, and one she stores for carol', async (t) => {
  const server = await startServer(t, ['--auth-secret', SECRET]);
  const bob = await peer(t, server, 'bob');
  assert.deepEqual(await bob.notice('alice', { text: 'call me' }, { store: true }), { stored: true });

  const backend = await tokenBackend(t, SECRET);
  const ctx = launch(t, { user: 'alice', config: { SERVER_URL: server.url, LOGIN_URL: backend.url } });
  const page = ctx.open('pages/chat/chat', { room: 'lobby' });
  // Stored notices come right after the welcome; App keeps them for the page.
  await page.until((d) => d.notices.length === 1, 10000, 'the stored notice');
  const [n] = page.data.notices;
  assert.equal(n.from, 'bob');
  assert.equal(n.text, 'call me');
  assert.equal(n.stored, true);
  assert.match(n.at, /^\d{4}-\d\d-\d\dT/);

  page.onNoticeTo({ detail: { value: 'carol' } });
  page.onNoticeText({ detail: { value: 'see you at 8' } });
  const ack = await page.onSendNotice();
  assert.deepEqual(ack, { stored: true });
  assert.equal(page.data.status, 'stored for carol');
  assert.equal(page.data.noticeText, '');

  const carol = new NodeSwitchboard({ url: server.url, token: token('carol'), transport: 'node' });
  t.after(() => carol.close());
  const got = waitFor(carol, 'notice');
  await carol.connect();
  const c = await got;
  assert.equal(c.from, 'alice');
  assert.deepEqual(c.data, { text: 'see you at 8' });

  // a live one reaches the page too
  await bob.notice('alice', 'are you there?');
  await page.until((d) => d.notices.length === 2);
  assert.deepEqual(page.data.notices[1].text, 'are you there?');
  assert.equal(page.data.notices[1].stored, false);
});

for (const resumed of [true, false]) {
  test(`an abrupt drop mid-conversation (${resumed ? 'session resumed' : 'not held: re-join with since'}): reconnected, every message once, in order`, async (t) => {
    const args = ['--messages-per-sec', '0', ...(resumed ? [] : ['--resume-window-secs', '0'])];
    const { server, ctx, app, sockets } = await setup(t, { args, client: { backoff: { initialMs: 200, maxMs: 400 } } });
    const page = ctx.open('pages/chat/chat', {});
    await page.until((d) => d.state === 'open' && d.joined);
    const bob = await peer(t, server, 'bob');
    await bob.room('lobby').join();

    const N = 60;
    const CUT = 20;
    const dropped = waitFor(app.sb, 'state', (s) => s.state === 'resuming');
    const welcomed = waitFor(app.sb, 'welcome', () => true, 20000);
    for (let n = 1; n <= N; n++) {
      if (n === CUT) {
        lastTask()._ws._socket.destroy(); // the phone lost its network: no close frame
        const away = resumed ? Promise.resolve() : waitFor(bob.room('lobby'), 'left', (e) => e.id === 'alice'); // no hold: she leaves at once
        const s = await dropped;
        assert.equal(s.code, 1006);
        await away;
        await page.until((d) => d.state === 'resuming');
        assert.equal(page.data.stateText, 'Reconnecting…');
      }
      const sent = bob.room('lobby').send({ text: String(n) });
      if (n % 10 === 0) await sent; // bob keeps talking while alice is away
    }
    await page.until((d) => fromBob(d).length >= N && d.state === 'open', 20000, 'every message');
    assert.equal((await welcomed).resumed, resumed);
    assert.deepEqual(fromBob(page.data).map((m) => m.text), range(1, N).map(String), 'every message once, in order');
    assert.deepEqual(page.data.messages.map((m) => m.offset), range(1, N));
    assert.equal(new Set(page.data.messages.map((m) => m.key)).size, N, 'each once');
    assert.equal(sockets(), 2, 'one reconnect');
    assert.equal(ctx.logins, 2, 'a fresh wx.login and token for the reconnect');
    assert.equal(page.data.joined, true);
    assert.equal(page.data.roomStatus, '', 'nothing had to be reloaded');
    // and it goes on
    page.onDraft({ detail: { value: 'back' } });
    const back = waitFor(bob.room('lobby'), 'message');
    await page.onSend();
    assert.equal((await back).data.text, 'back');
  });
}

test('App.onShow after a drop reconnects at once (instead of waiting for the backoff)', async (t) => {
  // A backoff far longer than the test: only onShow can bring it back in time.
  const { server, ctx, app, sockets } = await setup(t, { client: { backoff: { initialMs: 60000, maxMs: 60000 } } });
  const page = ctx.open('pages/chat/chat', {});
  await page.until((d) => d.state === 'open' && d.joined);
  const bob = await peer(t, server, 'bob');
  await bob.room('lobby').join();

  // "Background": the socket dies; the client waits out its backoff.
  lastTask()._ws._socket.destroy();
  await page.until((d) => d.state === 'resuming');
  await bob.room('lobby').send({ text: 'while you were away' });
  await new Promise((r) => setTimeout(r, 200)); // a bounded wait: nothing reconnects by itself
  assert.equal(sockets(), 1);
  assert.equal(page.data.state, 'resuming');

  const t0 = Date.now();
  app.onShow({}); // back in the foreground
  await page.until((d) => d.state === 'open' && d.messages.length === 1, 5000, 'reconnected by onShow');
  assert.ok(Date.now() - t0 < 5000);
  assert.equal(sockets(), 2);
  assert.deepEqual(page.data.messages.map((m) => [m.from, m.text, m.offset]), [['bob', 'while you were away', 1]]);
  const w = await app.sb.connect();
  assert.equal(w.resumed, true, 'the session was resumed');

  // onShow while open does nothing
  app.onShow({});
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(sockets(), 2);
});

test('replaced (4001): offline, and onShow does not knock the newer connection off', async (t) => {
  const { server, ctx, app, sockets } = await setup(t, { client: { backoff: { initialMs: 10, maxMs: 20 } } });
  const page = ctx.open('pages/chat/chat', {});
  await page.until((d) => d.state === 'open' && d.joined);

  const newer = await peer(t, server, 'alice'); // alice on another device
  await page.until((d) => d.state === 'closed', 5000, 'closed by 4001');
  assert.equal(app.globalData.closedFor, 'replaced');
  assert.equal(page.data.stateText, 'Signed in somewhere else (4001)');
  assert.equal(page.data.canReconnect, true);
  app.onShow({});
  await new Promise((r) => setTimeout(r, 300)); // a bounded wait for an absence
  assert.equal(sockets(), 1, 'no reconnect');
  assert.equal(newer.state, 'open');

  // The user asks for it: this device takes over (and the other one is told 4001).
  const otherClosed = waitFor(newer, 'state', (s) => s.state === 'closed');
  page.onReconnect();
  await page.until((d) => d.state === 'open' && d.joined, 10000, 'back, joined');
  assert.equal((await otherClosed).error.code, 'replaced');
  assert.equal(sockets(), 2);
});
