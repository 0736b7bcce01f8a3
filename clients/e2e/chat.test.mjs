// The web chat page (host/static, served by the switchboard binary at /) in
// a real Chromium, against the real server: two ids chat in a room, notices
// (to an online id, and stored for one that connects later), then one page
// loses its network twice while the other keeps sending:
//
//  1. "stall": DevTools network emulation offline. Chromium does not close an
//     open WebSocket for it (nor for Playwright's context.setOffline, which is
//     the same CDP call): the socket stays ESTABLISHED and frames stop in both
//     directions, so the server does not notice and keeps writing to it. The
//     page's heartbeat (?ping=1000&pong=1000) notices, gives the socket up
//     (4000 "no pong") and reconnects once back online; what the server wrote
//     to the stalled socket comes back through resume + the client's gap fill.
//  2. "cut": offline as above, and the page's TCP connection is destroyed with
//     `ss -K` (the kernel resets it: the server sees the drop at once and holds
//     the session, as for a phone that lost its network); what is sent
//     meanwhile is held and replayed on resume. Needs root and a kernel with
//     socket destroy (CONFIG_INET_DIAG_DESTROY); skipped with a note otherwise.
//
// Each time the page must show "reconnecting…", then "resumed"/"recovered",
// and every room message exactly once, in order. Nothing sleeps to
// synchronise: every wait is for a DOM condition, its timeout only a guard.
//
// SWITCHBOARD_BIN: the server binary (default ../../target/debug/switchboard).
// CHROMIUM: the browser (default /usr/bin/chromium).
// UPDATE_DOCS_SCREENSHOT=1 also writes docs/chat-page.png.
// E2E_STATIC_DIR=<dir>: serve the page from <dir> through a local proxy in
// front of the server instead of the copy built into the binary (to work on
// host/static without rebuilding the binary; not for CI).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
// The server and tokens as the client library's tests start and mint them.
import { BIN, startServer, mintToken } from '../js/test/helpers.mjs';
// A second party that is not a page (the client library's Node build, over `ws`).
import { Switchboard } from '../js/dist/esm/index.js';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '../..');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const STATIC = resolve(root, 'host/static');
const SHOTS = resolve(here, 'screenshots');
const WAIT = 20_000; // a guard against hanging, never a synchronisation
const PAGE_FILES = { '/': 'index.html', '/app.js': 'app.js', '/style.css': 'style.css', '/switchboard.js': 'switchboard.js' };
// Fast heartbeat (the client notices a stalled socket within ~2 s) and a short backoff cap.
const QUERY = '?ping=1000&pong=1000&backoff=1000';

if (!existsSync(BIN)) throw new Error(`no switchboard binary at ${BIN}: build it (cargo build -p switchboard) or set SWITCHBOARD_BIN`);
if (!existsSync(CHROMIUM)) throw new Error(`no Chromium at ${CHROMIUM}: apt-get install -y chromium (or set CHROMIUM)`);

/** E2E_STATIC_DIR only: the page from a folder, everything else passed to the server. */
async function staticProxy(t, dir, port) {
  const csp = "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; frame-ancestors 'none'";
  const srv = http.createServer((req, res) => {
    const file = PAGE_FILES[req.url.split('?')[0]];
    if (file) {
      const type = file.endsWith('.html') ? 'text/html' : file.endsWith('.css') ? 'text/css' : 'text/javascript';
      res.writeHead(200, { 'Content-Type': type + '; charset=utf-8', 'Content-Security-Policy': csp, 'Cache-Control': 'no-cache', Connection: 'close' });
      return res.end(readFileSync(resolve(dir, file)));
    }
    const up = http.request({ host: '127.0.0.1', port, path: req.url, method: req.method, headers: req.headers }, (r) => {
      res.writeHead(r.statusCode, { ...r.headers, connection: 'close' });
      r.pipe(res);
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  srv.on('upgrade', (req, sock, head) => {
    const up = net.connect(port, '127.0.0.1', () => {
      let raw = `${req.method} ${req.url} HTTP/1.1\r\n`;
      for (let i = 0; i < req.rawHeaders.length; i += 2) raw += `${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}\r\n`;
      up.write(raw + '\r\n');
      if (head.length) up.write(head);
      up.pipe(sock);
      sock.pipe(up);
    });
    const kill = () => (up.destroy(), sock.destroy());
    for (const s of [up, sock]) s.on('error', kill).on('close', kill);
  });
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  t.after(() => srv.close());
  return srv.address().port;
}

/** The TCP connections from the browser to `port` (their local ports), from the kernel's table. */
function clientSockets(port) {
  let out = '';
  try {
    out = execFileSync('ss', ['-tnH', 'state', 'established', `( dport = :${port} )`], { encoding: 'utf8' });
  } catch {
    return new Set(); // no ss (iproute2): the tests that cut sockets skip themselves
  }
  return new Set(out.split('\n').map((l) => l.trim().split(/\s+/)).filter((f) => f.length >= 4).map((f) => f[2]));
}

/** Destroys one TCP connection (both ends live on this machine): the kernel resets it. */
function killSocket(local, port) {
  const lport = local.split(':').pop();
  execFileSync('ss', ['-K', '-tnH', 'state', 'established', `( sport = :${lport} and dport = :${port} )`], { encoding: 'utf8' });
}

/** Bob's connection: the browser's one socket to the server that is not
 *  alice's (waits for an older one of his, closing, to be gone). */
async function bobSocket(port, alices) {
  const deadline = Date.now() + WAIT;
  for (;;) {
    const others = [...clientSockets(port)].filter((s) => !alices.has(s));
    if (others.length === 1) return others[0];
    if (Date.now() > deadline) assert.fail(`expected one socket of bob's, got ${others.join(', ') || 'none'} (alice's: ${[...alices].join(', ')})`);
    await new Promise((r) => setTimeout(r, 50)); // polling the kernel's table, not a synchronisation
  }
}

function canKillSockets() {
  // A connection of our own, destroyed the same way: does it die?
  return new Promise((res) => {
    const srv = net.createServer((s) => s.on('error', () => {}));
    srv.listen(0, '127.0.0.1', () => {
      const port = srv.address().port;
      const c = net.connect(port, '127.0.0.1', () => {
        try {
          killSocket(`127.0.0.1:${c.localPort}`, port);
        } catch {
          /* no ss, or not allowed */
        }
      });
      const done = (ok) => {
        clearTimeout(guard);
        c.destroy();
        srv.close();
        res(ok);
      };
      const guard = setTimeout(() => done(false), 2000);
      c.on('error', () => done(true));
      c.on('close', () => done(true));
    });
  });
}

/** A page in its own browser context, connected as `id`. `refused` counts
 *  the `rate-limited` errors the server sent it (the client retries them). */
async function openChat(browser, origin, id, errors) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 760 } });
  const page = await context.newPage();
  page.on('pageerror', (e) => errors.push(`${id}: ${e.stack || e}`));
  const p = { id, context, page, refused: 0 };
  page.on('websocket', (ws) =>
    ws.on('framereceived', (f) => {
      if (typeof f.payload === 'string' && f.payload.includes('"code":"rate-limited"')) p.refused++;
    }),
  );
  await page.goto(origin + '/' + QUERY);
  await page.getByTestId('id-input').fill(id);
  await page.getByTestId('connect').click();
  await waitState(page, ['open']);
  assert.equal(await page.getByTestId('whoami').textContent(), id);
  return p;
}

/** The error lines of the page's connection log. */
function loggedErrors(p) {
  return p.page.$$eval('[data-testid=log-entry][data-kind=error]', (els) => els.map((e) => e.textContent));
}

/** Waits until every room in `names` is joined (its item no longer pending). */
function allJoined(p, names) {
  return p.page.waitForFunction(
    (names) => names.every((n) => document.querySelector(`[data-testid=room-item][data-room="${n}"]:not(.pending)`)),
    names,
    { timeout: WAIT },
  );
}

/** A Node client of the library (not a page), closed after the test. */
async function nodePeer(t, server, id) {
  const sb = new Switchboard({ url: server.url, id, transport: 'node' });
  t.after(() => sb.close());
  await sb.connect();
  return sb;
}

function waitState(page, states, timeout = WAIT) {
  return page.waitForFunction((s) => s.includes(document.querySelector('[data-testid=conn-state]').dataset.state), states, { timeout });
}

async function join(p, room) {
  await p.page.getByTestId('room-input').fill(room);
  await p.page.getByTestId('join-room').click();
  await p.page.locator(`[data-testid=room-item][data-room="${room}"]:not(.pending)`).waitFor({ timeout: WAIT });
}

async function select(p, room) {
  await p.page.locator(`[data-testid=room-item][data-room="${room}"] [data-testid=room-select]`).click();
}

/** Sends a room message from the composer; resolves once the server acked it. */
async function say(p, text) {
  await p.page.getByTestId('message-input').fill(text);
  await p.page.getByTestId('message-input').press('Enter');
}
async function allSent(p) {
  await p.page.waitForFunction(() => !document.querySelector('[data-testid=message][data-status=sending]'), null, { timeout: WAIT });
  assert.equal(await p.page.locator('[data-testid=message][data-status=failed]').count(), 0, `${p.id}: a message failed to send`);
}

/** [from, text] of every message shown in `room`, in order. */
function messages(p, room) {
  return p.page.$$eval(`[data-testid=messages][data-room="${room}"] [data-testid=message]`, (els) =>
    els.map((e) => [e.dataset.from, e.querySelector('[data-testid=message-text]').textContent]),
  );
}
function waitMessage(p, room, text) {
  return p.page.waitForFunction(
    ([room, text]) => [...document.querySelectorAll(`[data-testid=messages][data-room="${room}"] [data-testid=message-text]`)].some((e) => e.textContent === text),
    [room, text],
    { timeout: WAIT },
  );
}
function members(p) {
  return p.page.$$eval('[data-testid=member]', (els) => els.map((e) => e.dataset.id));
}
function waitMembers(p, ids) {
  return p.page.waitForFunction((ids) => [...document.querySelectorAll('[data-testid=member]')].map((e) => e.dataset.id).join() === ids.join(), ids, { timeout: WAIT });
}

async function sendNotice(p, to, text, keep) {
  await p.page.getByTestId('notice-to').fill(to);
  await p.page.getByTestId('notice-text').fill(text);
  await p.page.getByTestId('notice-store').setChecked(!!keep);
  await p.page.getByTestId('notice-send').click();
  const out = p.page.getByTestId('notice-result');
  await p.page.waitForFunction(() => !['sending', undefined].includes(document.querySelector('[data-testid=notice-result]').dataset.result), null, { timeout: WAIT });
  return { result: await out.getAttribute('data-result'), text: await out.textContent() };
}
function notices(p) {
  return p.page.$$eval('[data-testid=notice]', (els) =>
    els.map((e) => ({ from: e.dataset.from, text: e.querySelector('[data-testid=notice-body]').textContent, storedAt: e.dataset.storedAt })),
  );
}

async function setOffline(cdp, offline) {
  await cdp.send('Network.emulateNetworkConditions', { offline, latency: 0, downloadThroughput: -1, uploadThroughput: -1 });
}

/** A server (with `args`), the page's origin, and a Chromium; all stopped after the test. */
async function setup(t, args) {
  const server = await startServer(t, args);
  const origin = process.env.E2E_STATIC_DIR
    ? `http://127.0.0.1:${await staticProxy(t, resolve(process.env.E2E_STATIC_DIR), server.port)}`
    : `http://127.0.0.1:${server.port}`;
  mkdirSync(SHOTS, { recursive: true });
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-dev-shm-usage'] });
  t.after(() => browser.close());
  return { server, origin, pagePort: Number(new URL(origin).port), browser, errors: [] };
}
const shot = (p, name) => p.page.screenshot({ path: resolve(SHOTS, name + '.png') });

test('the web chat page in Chromium against the real server', { timeout: 240_000 }, async (t) => {
  const { origin, pagePort, browser, errors } = await setup(t);

  await t.test('the server serves the page, the same files as host/static', async () => {
    const dir = process.env.E2E_STATIC_DIR ? resolve(process.env.E2E_STATIC_DIR) : STATIC;
    for (const [path, file] of Object.entries(PAGE_FILES)) {
      const r = await fetch(origin + path);
      assert.equal(r.status, 200, `GET ${path} (does this binary serve the chat page?)`);
      const body = Buffer.from(await r.arrayBuffer());
      assert.ok(body.equals(readFileSync(resolve(dir, file))), `GET ${path} is not ${dir}/${file}: rebuild the binary (cargo build -p switchboard)`);
    }
    assert.match((await fetch(origin + '/')).headers.get('content-type') || '', /^text\/html/);
  });

  const alice = await openChat(browser, origin, 'alice', errors);
  // The server answers each page request on its own connection and closes
  // it: what stays open from the browser now is alice's WebSocket.
  const aliceSockets = clientSockets(pagePort);
  const bob = await openChat(browser, origin, 'bob', errors);

  await t.test('two ids join a room, see each other arrive, and chat both ways', async () => {
    await join(alice, 'lobby');
    await waitMembers(alice, ['alice']);
    await join(bob, 'lobby');
    await waitMembers(alice, ['alice', 'bob']); // live: bob's `joined`
    await waitMembers(bob, ['alice', 'bob']); // asked with `members`
    await alice.page.getByText('bob joined').waitFor({ timeout: WAIT });

    await say(alice, 'hello bob');
    await allSent(alice);
    await waitMessage(bob, 'lobby', 'hello bob');
    await say(bob, 'hi alice <b>not bold</b>');
    await allSent(bob);
    await waitMessage(alice, 'lobby', 'hi alice <b>not bold</b>');
    const want = [['alice', 'hello bob'], ['bob', 'hi alice <b>not bold</b>']];
    assert.deepEqual(await messages(alice, 'lobby'), want);
    assert.deepEqual(await messages(bob, 'lobby'), want);
    // User content is text, never markup.
    assert.equal(await bob.page.locator('[data-testid=messages] b').count(), 0);

    // Several rooms: a second one, its own timeline, then leave it.
    await join(alice, 'garden');
    assert.equal(await alice.page.getByTestId('room-title').textContent(), '#garden');
    await waitMembers(alice, ['alice']);
    await select(alice, 'lobby');
    await waitMembers(alice, ['alice', 'bob']);
    await select(alice, 'garden');
    await alice.page.getByTestId('leave-room').click();
    await alice.page.locator('[data-testid=room-item][data-room="garden"]').waitFor({ state: 'detached', timeout: WAIT });
    assert.equal(await alice.page.getByTestId('room-title').textContent(), '#lobby');
  });

  await t.test('notices: delivered to an online id, stored for an offline one that connects later', async () => {
    const online = await sendNotice(alice, 'bob', 'psst, bob');
    assert.equal(online.result, 'delivered', online.text);
    await bob.page.locator('[data-testid=notice][data-from=alice]').waitFor({ timeout: WAIT });
    assert.deepEqual(await notices(bob), [{ from: 'alice', text: 'psst, bob', storedAt: undefined }]);

    const refused = await sendNotice(alice, 'dave', 'are you there?');
    assert.equal(refused.result, 'target-closed');
    assert.match(refused.text, /dave is not online/);

    const stored = await sendNotice(alice, 'carol', 'call me when you are back', true);
    assert.equal(stored.result, 'stored', stored.text);
    assert.match(stored.text, /carol is offline/);

    const carol = await openChat(browser, origin, 'carol', errors);
    await carol.page.locator('[data-testid=notice][data-from=alice]').waitFor({ timeout: WAIT });
    const got = await notices(carol);
    assert.equal(got.length, 1);
    assert.equal(got[0].text, 'call me when you are back');
    assert.ok(!Number.isNaN(Date.parse(got[0].storedAt)), `stored_at ${got[0].storedAt}`);
    assert.match(await carol.page.locator('[data-testid=notice] [data-testid=notice-time]').textContent(), /^stored .* while you were offline$/);

    // Carol comes into the lobby and goes: alice sees it live.
    await join(carol, 'lobby');
    await waitMembers(alice, ['alice', 'bob', 'carol']);
    await carol.page.getByTestId('leave-room').click();
    await waitMembers(alice, ['alice', 'bob']);
    await alice.page.getByText('carol left').waitFor({ timeout: WAIT });

    // A reload keeps the tab's id (sessionStorage) and connects again; the
    // notice, which the server handed over once, is still shown.
    await carol.page.reload();
    await waitState(carol.page, ['open']);
    assert.equal(await carol.page.getByTestId('whoami').textContent(), 'carol');
    assert.deepEqual((await notices(carol)).map((n) => n.text), ['call me when you are back']);
    await shot(carol, 'carol');
    await carol.context.close();
  });

  const expected = [['alice', 'hello bob'], ['bob', 'hi alice <b>not bold</b>']];
  const cdp = await bob.context.newCDPSession(bob.page);
  await cdp.send('Network.enable');

  await t.test('offline (stalled socket): reconnecting…, then back with every message once, in order', async () => {
    const before = clientSockets(pagePort);
    await setOffline(cdp, true);
    // The socket is not closed by the emulation: the heartbeat finds it dead.
    await waitState(bob.page, ['reconnecting']);
    assert.match(await bob.page.getByTestId('conn-detail').textContent(), /no answer from the server \(4000\)/);
    const stalled = clientSockets(pagePort);
    t.diagnostic(`TCP connections to the server while offline: ${stalled.size} (before: ${before.size}); the stalled socket is ${[...before].every((s) => stalled.has(s)) ? 'still ESTABLISHED' : 'gone'}`);

    const N = 12;
    for (let i = 1; i <= N; i++) {
      await say(alice, `while bob is away #${i}`);
      expected.push(['alice', `while bob is away #${i}`]);
    }
    await allSent(alice);
    // Still offline, still trying.
    assert.equal(await bob.page.getByTestId('conn-state').getAttribute('data-state'), 'reconnecting');

    await setOffline(cdp, false);
    await waitState(bob.page, ['resumed', 'recovered']);
    t.diagnostic(`after the stall bob is ${await bob.page.getByTestId('conn-state').getAttribute('data-state')}`);
    // A live message after the recovery: anything replayed twice would come before it.
    await say(alice, 'welcome back');
    expected.push(['alice', 'welcome back']);
    await allSent(alice);
    await waitMessage(bob, 'lobby', 'welcome back');
    assert.deepEqual(await messages(bob, 'lobby'), expected);
    assert.deepEqual(await messages(alice, 'lobby'), expected);
    await shot(bob, 'bob-after-stall');
  });

  await t.test('a cut TCP connection: the server holds bob, what is sent meanwhile is replayed on resume', async (st) => {
    if (!(await canKillSockets())) return st.skip('cannot destroy sockets here (ss -K needs root and CONFIG_INET_DIAG_DESTROY)');
    const bobs = await bobSocket(pagePort, aliceSockets);
    await setOffline(cdp, true);
    killSocket(bobs, pagePort);
    assert.ok(!clientSockets(pagePort).has(bobs), "bob's socket is gone");
    await waitState(bob.page, ['reconnecting']);
    // The server saw the reset (long before the page's heartbeat did): a
    // notice to bob is held for him, not written to a dead socket.
    const held = await sendNotice(alice, 'bob', 'while you were cut off');
    assert.equal(held.result, 'held', held.text);

    const N = 12;
    for (let i = 1; i <= N; i++) {
      await say(alice, `cut off #${i}`);
      expected.push(['alice', `cut off #${i}`]);
    }
    await allSent(alice);
    await setOffline(cdp, false);
    await waitState(bob.page, ['resumed']);
    await say(alice, 'and welcome back again');
    expected.push(['alice', 'and welcome back again']);
    await allSent(alice);
    await waitMessage(bob, 'lobby', 'and welcome back again');
    assert.deepEqual(await messages(bob, 'lobby'), expected);
    const got = await notices(bob);
    assert.deepEqual(got.map((n) => n.text), ['while you were cut off', 'psst, bob']);
    await shot(bob, 'bob-after-cut');
  });

  await t.test('back to chatting; unread counts; screenshots; no error in the pages', async () => {
    // A second room for bob; a message there while he looks at the lobby shows as unread.
    await join(bob, 'garden');
    await select(bob, 'lobby');
    await join(alice, 'garden');
    await say(alice, 'Anyone in the garden?');
    await allSent(alice);
    const badge = bob.page.locator('[data-testid=room-item][data-room="garden"] [data-testid=unread]');
    await badge.waitFor({ timeout: WAIT });
    assert.equal(await badge.textContent(), '1');
    assert.deepEqual(await messages(bob, 'garden'), [['alice', 'Anyone in the garden?']]);
    await select(alice, 'lobby');
    const lines = [
      [bob, 'Back! Got all of them, in order, nothing twice.'],
      [alice, 'The page said “reconnecting…” the whole time?'],
      [bob, 'Yes, then “resumed”. Your notice was waiting too.'],
      [alice, 'Nice. Lunch at one?'],
    ];
    for (const [p, text] of lines) {
      await say(p, text);
      await allSent(p);
      await waitMessage(p === bob ? alice : bob, 'lobby', text);
      expected.push([p.id, text]);
    }
    assert.deepEqual(await messages(bob, 'lobby'), expected);
    assert.deepEqual(await messages(alice, 'lobby'), expected);
    const kept = await sendNotice(bob, 'carol', 'see you at the standup', true);
    assert.equal(kept.result, 'stored', kept.text);
    await bob.page.getByTestId('message-input').focus();
    await shot(alice, 'alice');
    await shot(bob, 'bob');
    if (process.env.UPDATE_DOCS_SCREENSHOT) await bob.page.screenshot({ path: resolve(root, 'docs/chat-page.png') });
    assert.deepEqual(errors, []);
  });
});

test('without a resume: "recovered", or the history reloaded when recovery is not possible', { timeout: 120_000 }, async (t) => {
  if (!(await canKillSockets())) return t.skip('cannot destroy sockets here (ss -K needs root and CONFIG_INET_DIAG_DESTROY)');
  // No session is held (the rooms hear bob leave at once) and rooms keep 5 messages.
  const { origin, pagePort, browser, errors } = await setup(t, ['--resume-window-secs', '0', '--history-size', '5']);
  const alice = await openChat(browser, origin, 'alice', errors);
  const aliceSockets = clientSockets(pagePort);
  const bob = await openChat(browser, origin, 'bob', errors);
  await join(alice, 'lobby');
  await join(bob, 'lobby');
  await waitMembers(alice, ['alice', 'bob']);
  const cdp = await bob.context.newCDPSession(bob.page);
  await cdp.send('Network.enable');
  const sent = [];

  /** Bob offline and his connection reset; alice sends `n` messages; bob back. */
  async function away(label, n) {
    const bobs = await bobSocket(pagePort, aliceSockets);
    await setOffline(cdp, true);
    killSocket(bobs, pagePort);
    await waitMembers(alice, ['alice']); // the server let bob go: nothing is held
    await waitState(bob.page, ['reconnecting']);
    for (let i = 1; i <= n; i++) {
      await say(alice, `${label} #${i}`);
      sent.push(['alice', `${label} #${i}`]);
    }
    await allSent(alice);
    await setOffline(cdp, false);
  }

  await t.test('a fresh session recovers what was missed from the room history', async () => {
    await away('missed', 3);
    await waitState(bob.page, ['recovered']);
    await say(alice, 'live after recovery');
    sent.push(['alice', 'live after recovery']);
    await waitMessage(bob, 'lobby', 'live after recovery');
    assert.deepEqual(await messages(bob, 'lobby'), sent);
  });

  await t.test('more missed than the room keeps: the page says so and shows the history it keeps', async () => {
    await away('too many', 8);
    await waitState(bob.page, ['reloaded']);
    assert.match(await bob.page.getByTestId('conn-detail').textContent(), /history reloaded/);
    await bob.page.locator('[data-testid=messages][data-room="lobby"] [data-testid=system][data-kind=reloaded]').waitFor({ timeout: WAIT });
    await say(alice, 'live after the reload');
    sent.push(['alice', 'live after the reload']);
    await waitMessage(bob, 'lobby', 'live after the reload');
    // The 5 the room keeps, then live traffic: nothing twice.
    assert.deepEqual(await messages(bob, 'lobby'), sent.slice(-6));
    await shot(bob, 'bob-history-reloaded');
    assert.deepEqual(errors, []);
  });
});

test('a pasted token instead of an id; a refused token is said plainly', { timeout: 60_000 }, async (t) => {
  const secret = 'e2e-only-secret-0123456789abcdef0123456789';
  const { origin, browser, errors } = await setup(t, ['--auth-secret', secret]);
  const context = await browser.newContext({ viewport: { width: 1280, height: 760 } });
  const page = await context.newPage();
  page.on('pageerror', (e) => errors.push(`token page: ${e.stack || e}`));
  await page.goto(origin + '/' + QUERY);
  const exp = Math.floor(Date.now() / 1000) + 3600;

  await page.getByText('Use a signed token instead').click();
  await page.getByTestId('token-input').fill(mintToken(secret, { sub: 'dana', exp }));
  await page.getByTestId('connect').click();
  await waitState(page, ['open']);
  assert.equal(await page.getByTestId('whoami').textContent(), 'dana'); // the token's sub

  await page.getByTestId('disconnect').click();
  await waitState(page, ['closed']);
  assert.equal(await page.getByTestId('conn-detail').textContent(), 'you disconnected');
  await page.getByTestId('change-id').click();
  await page.getByTestId('token-input').fill(mintToken('some-other-secret-0123456789abcdef0123', { sub: 'dana', exp }));
  await page.getByTestId('connect').click();
  await waitState(page, ['closed']);
  assert.match(await page.getByTestId('conn-detail').textContent(), /refused the token \(401\)/);
  // Refused before it ever connected: back on the form, which says why.
  assert.match(await page.getByTestId('login-error').textContent(), /refused the token \(401\)/);
  assert.equal(await page.getByTestId('login-form').isVisible(), true);
  await shot({ page }, 'token-refused');
  assert.deepEqual(errors, []);
});

test("30 rooms at once, and again on a reload: within the server's default limits", { timeout: 120_000 }, async (t) => {
  const { server, origin, browser, errors } = await setup(t);
  // Every room has a member and a message already: a page asking each
  // room's members and earlier messages at once would ask 60 questions.
  const names = Array.from({ length: 30 }, (_, i) => `room-${i + 1}`);
  const bob = await nodePeer(t, server, 'bob');
  await Promise.all(names.map((n) => bob.room(n).join()));
  await Promise.all(names.map((n) => bob.room(n).send({ text: `before you came to ${n}` })));
  const alice = await openChat(browser, origin, 'alice', errors);

  // Joined one after another from the form, as fast as it takes them.
  for (const n of names) {
    await alice.page.getByTestId('room-input').fill(n);
    await alice.page.getByTestId('join-room').click();
  }
  await allJoined(alice, names);
  await waitMembers(alice, ['alice', 'bob']); // the room shown: the last one joined
  await alice.page.locator('[data-testid=messages][data-room="room-30"] [data-testid=system][data-kind=history]').waitFor({ timeout: WAIT });

  // A reload joins all 30 at once.
  await alice.page.reload();
  await waitState(alice.page, ['open']);
  await allJoined(alice, names);
  assert.equal(await alice.page.getByTestId('room-title').textContent(), '#room-30');
  await waitMembers(alice, ['alice', 'bob']);
  // Other rooms ask what they lack when shown.
  for (const n of ['room-1', 'room-17']) {
    await select(alice, n);
    await waitMembers(alice, ['alice', 'bob']);
    await waitMessage(alice, n, `before you came to ${n}`);
  }
  assert.deepEqual(await loggedErrors(alice), []);
  assert.equal(alice.refused, 0, 'the server never had to refuse the page anything');
  assert.deepEqual(errors, []);
});

test("a server with a tight query limit: the page's refused questions are retried", { timeout: 120_000 }, async (t) => {
  const { server, origin, browser, errors } = await setup(t, ['--queries-per-sec', '2', '--queries-burst', '2']);
  const names = ['a', 'b', 'c', 'd', 'e', 'f'];
  const bob = await nodePeer(t, server, 'bob');
  await Promise.all(names.map((n) => bob.room(n).join()));
  await Promise.all(names.map((n) => bob.room(n).send({ text: `hello from ${n}` })));
  const alice = await openChat(browser, origin, 'alice', errors);
  // Each room joined from the form is shown: its members and earlier
  // messages are asked at once (two queries a room, at the client's default
  // pace of 4.5 a second: the server refuses some).
  for (const n of names) await join(alice, n);
  for (const n of names) {
    await select(alice, n);
    await waitMembers(alice, ['alice', 'bob']);
    await waitMessage(alice, n, `hello from ${n}`);
  }
  assert.ok(alice.refused > 0, 'the server refused some questions');
  assert.deepEqual(await loggedErrors(alice), [], 'and the page got every answer in the end');
  assert.deepEqual(errors, []);
});
