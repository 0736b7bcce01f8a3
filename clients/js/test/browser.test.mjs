// The browser build, over a WHATWG WebSocket: Node 20 has none, so the test
// installs `ws` (which implements that API) as the global WebSocket. As in a
// browser, the transport cannot see a refused handshake's status: a 401
// needs the plain-GET probe (fetch).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import vm from 'node:vm';
import { WebSocket } from 'ws';
import * as S from './scenarios.mjs';

globalThis.WebSocket = WebSocket;
const { Switchboard } = await import('../dist/esm/browser.js');

const make = (t, Class = Switchboard) => (opts) => {
  const sb = new Class(opts); // transport 'auto': the browser entry has only the browser transport
  t.after(() => sb.close());
  return sb;
};

test('every call', (t) => S.everyCall(t, make(t)));
test('TCP drop mid-conversation, session resumed', (t) => S.dropMidConversation(t, make(t), { resumed: true }));
test('TCP drop mid-conversation, not held: re-join with since', (t) => S.dropMidConversation(t, make(t), { resumed: false }));
test('4001 replaced: closed, no reconnect', (t) => S.replaced(t, make(t)));
test('signed tokens; 401 through the fetch probe (a plain GET of the same URL)', (t) => S.signedTokens(t, make(t), { knowsStatus: false }));
test('30 rooms joined at once and their members asked: within the default limits', (t) => S.manyRooms(t, make(t)));
test('a TCP cut with gaps in 30 rooms: filled from history, paced', (t) => S.gapsInManyRooms(t, make(t), { pace: true }));

test('the <script> bundle sets the global Switchboard', async (t) => {
  vm.runInThisContext(readFileSync(new URL('../dist/switchboard.browser.js', import.meta.url), 'utf8'));
  const G = globalThis.Switchboard;
  assert.equal(typeof G, 'function');
  assert.equal(G.Switchboard, G);
  assert.equal(typeof G.SwitchboardError, 'function');
  await S.everyCall(t, make(t, G));
});

test('the <script> bundle survives a drop', async (t) => {
  await S.dropMidConversation(t, make(t, globalThis.Switchboard), { resumed: true });
});
