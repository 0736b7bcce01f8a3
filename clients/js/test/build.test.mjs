// What the build produced: the bundles hold only what their platform needs,
// and the package's entry points resolve.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { test } from 'node:test';
import { gzipSync, constants } from 'node:zlib';

const read = (p) => readFileSync(new URL(p, import.meta.url), 'utf8');

test('the browser bundle is small and has no Node or wx code', () => {
  const js = read('../dist/switchboard.browser.js');
  const size = gzipSync(js, { level: constants.Z_BEST_COMPRESSION }).length;
  assert.ok(size <= 8192, `${size} bytes min+gzip`);
  assert.doesNotMatch(js, /import\(/);
  assert.doesNotMatch(js, /connectSocket\(/);
  assert.doesNotMatch(js, /unexpected-response/);
});

test('the wx file is CommonJS with the wx transport only', () => {
  const js = read('../dist/wx/switchboard.js');
  assert.match(js, /module\.exports/);
  assert.match(js, /connectSocket\(/);
  assert.doesNotMatch(js, /import\(/);
  assert.doesNotMatch(js, /unexpected-response/);
  assert.doesNotMatch(js, /\?\?|\?\./, 'no ES2020 syntax for older mini-program runtimes');
});

test('the package resolves for import and require', async () => {
  const esm = await import('switchboard-client');
  const cjs = createRequire(import.meta.url)('switchboard-client');
  assert.equal(typeof esm.Switchboard, 'function');
  assert.equal(typeof cjs.Switchboard, 'function');
  assert.notEqual(esm.Switchboard, cjs.Switchboard);
  const types = JSON.parse(read('../package.json')).exports['.'];
  for (const cond of ['import', 'require', 'browser']) assert.ok(readFileSync(new URL('../' + types[cond].types, import.meta.url)));
});
