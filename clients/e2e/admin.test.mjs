// The admin page (host/static/admin, served by the binary at / on the admin
// listener) in a real Chromium, against the real server: log in with the
// token, upload a component (its check shown before publishing), see it
// active, roll back, find an id and disconnect it (close 4003). Nothing
// sleeps to synchronise: every wait is for a DOM condition or an event, its
// timeout only a guard.
//
// SWITCHBOARD_BIN: the server binary (default ../../target/debug/switchboard).
// CHROMIUM: the browser (default /usr/bin/chromium).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { BIN, freePort, startServer } from '../js/test/helpers.mjs';
import { Switchboard } from '../js/dist/esm/index.js';

const here = dirname(fileURLToPath(import.meta.url));
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const SHOTS = resolve(here, 'screenshots');
const WAIT = 20_000; // a guard against hanging, never a synchronisation
const TOKEN = 'admin-page-e2e-token-0123456789';
// A component to upload: the default policy as the build compiled it
// (target/wasm/…, beside target/debug/switchboard).
const COMPONENT = resolve(dirname(BIN), '../wasm/wasm32-wasip2/guest/guest_logic.wasm');

if (!existsSync(CHROMIUM)) throw new Error(`no Chromium at ${CHROMIUM}: apt-get install -y chromium (or set CHROMIUM)`);
if (!existsSync(COMPONENT)) throw new Error(`no component at ${COMPONENT}: build the server (cargo build -p switchboard)`);


const text = (page, id) => page.getByTestId(id).textContent();
async function until(page, id, pred, what) {
  const deadline = Date.now() + WAIT;
  for (;;) {
    const t = await text(page, id);
    if (pred(t)) return t;
    if (Date.now() > deadline) assert.fail(`${what}: ${id} is ${JSON.stringify(t)}`);
    await page.waitForTimeout(50); // polling the DOM the page updates, not a synchronisation
  }
}

test('the admin page: log in, upload and publish, roll back, find and disconnect an id', { timeout: 120_000 }, async (t) => {
  const port = await freePort();
  const server = await startServer(t, ['--admin-listen', `127.0.0.1:${port}`, '--admin-token', TOKEN]);
  const admin = `http://127.0.0.1:${port}`;

  // Someone to find: a client in a room.
  const zoe = new Switchboard({ url: server.url, id: 'zoe' });
  t.after(() => zoe.close());
  await zoe.connect();
  await zoe.room('plaza').join();
  const closes = [];
  zoe.on('state', (e) => e.code !== undefined && closes.push(e));

  mkdirSync(SHOTS, { recursive: true });
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-dev-shm-usage'] });
  t.after(() => browser.close());
  const page = await browser.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
  await page.goto(admin + '/');

  // A wrong token is refused, and the page says so.
  await page.getByTestId('token-input').fill('not-the-token-at-all');
  await page.getByTestId('login-button').click();
  await until(page, 'login-error', (s) => /refused/.test(s), 'a wrong token');
  errors.length = 0; // the 401 itself is logged by the browser

  await page.getByTestId('token-input').fill(TOKEN);
  await page.getByTestId('login-button').click();
  await page.getByTestId('main').waitFor({ timeout: WAIT });
  await until(page, 'active-seq', (s) => s === '1', 'the embedded policy active');
  await until(page, 'previous-seq', (s) => s === 'none', 'no previous version');
  await until(page, 'live-open', (s) => s === '1', 'zoe counted');
  // Kept in the tab's session only: a reload stays logged in.
  assert.equal(await page.evaluate(() => sessionStorage.getItem('switchboard-admin-token')), TOKEN);
  assert.equal(await page.evaluate(() => localStorage.length), 0);

  // Upload: checked first, published only on request.
  await page.getByTestId('upload-file').setInputFiles(COMPONENT);
  await page.getByTestId('check').click();
  await until(page, 'check-result', (s) => s.startsWith('ok:'), 'the check result');
  assert.match(await text(page, 'check-result'), /guest_logic\.wasm satisfies switchboard:policy\/policy@0\.2\.0/);
  assert.equal(await text(page, 'active-seq'), '1', 'a check publishes nothing');
  await page.getByTestId('publish').click();
  await until(page, 'policy-message', (s) => /version 2 is active/.test(s), 'published');
  await until(page, 'active-seq', (s) => s === '2', 'the upload active');
  await until(page, 'previous-seq', (s) => s === '1', 'the embedded one kept for rollback');
  await page.locator('[data-testid=recent] li[data-kind=swap]').first().waitFor({ timeout: WAIT });
  await page.screenshot({ path: resolve(SHOTS, 'admin-page.png'), fullPage: true });

  // Roll back.
  await page.getByTestId('rollback').click();
  await until(page, 'policy-message', (s) => /rolled back: version 1 is active/.test(s), 'rolled back');
  await until(page, 'active-seq', (s) => s === '1', 'the embedded one active again');
  await page.locator('[data-testid=recent] li[data-kind=rollback]').first().waitFor({ timeout: WAIT });

  // Find zoe, and disconnect her.
  await page.reload();
  await page.getByTestId('main').waitFor({ timeout: WAIT });
  await page.getByTestId('find-id').fill('zoe');
  await page.getByTestId('find').click();
  await page.getByTestId('found').waitFor({ timeout: WAIT });
  assert.equal(await text(page, 'found-rooms'), 'plaza');
  assert.match(await text(page, 'found-address'), /^127\.0\.0\.1:\d+$/);
  assert.match(await text(page, 'found-since'), /^\d{4}-\d\d-\d\dT/);
  const told = new Promise((res) => zoe.on('state', (e) => e.code === 4003 && res(e)));
  await page.getByTestId('disconnect-reason').fill('bye zoe');
  await page.getByTestId('disconnect').click();
  await until(page, 'find-message', (s) => /disconnected zoe \(4003: bye zoe\)/.test(s), 'disconnected');
  const e = await told;
  assert.equal(e.reason, 'bye zoe');
  assert.deepEqual(errors, []);
});
