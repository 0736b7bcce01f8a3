// The mini-program build (dist/wx/switchboard.js, CommonJS) over the wx
// transport. The WeChat runtime does not run here: test/wx-shim.mjs
// implements the documented wx.connectSocket / SocketTask / wx.request API
// over `ws`, and the same scenarios run through it.
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { test } from 'node:test';
import * as S from './scenarios.mjs';
import { createWx } from './wx-shim.mjs';

const { wx, stats } = createWx();
globalThis.wx = wx;
const require = createRequire(import.meta.url);
const { Switchboard, SwitchboardError } = require('../dist/wx/switchboard.js');

const make = (t) => (opts) => {
  const sb = new Switchboard(opts); // transport 'auto' finds wx
  t.after(() => sb.close());
  return sb;
};

test('the wx build exports the API', () => {
  assert.equal(typeof Switchboard, 'function');
  assert.equal(typeof SwitchboardError, 'function');
});
test('every call', async (t) => {
  const before = stats.sockets;
  await S.everyCall(t, make(t));
  assert.ok(stats.sockets > before, 'went through wx.connectSocket');
});
test('TCP drop mid-conversation, session resumed', (t) => S.dropMidConversation(t, make(t), { resumed: true }));
test('TCP drop mid-conversation, not held: re-join with since', (t) => S.dropMidConversation(t, make(t), { resumed: false }));
test('recovery-failed', (t) => S.recoveryFailed(t, make(t)));
test('4001 replaced: closed, no reconnect', (t) => S.replaced(t, make(t)));
test('signed tokens; 401 through the wx.request probe (a plain GET of the same URL)', (t) => S.signedTokens(t, make(t), { knowsStatus: false }));
test('heartbeat: a silent server is detected and the socket replaced', (t) => S.heartbeat(t, make(t)));
test('requests: queued before open, rejected on drop, timeout, bounded queue', (t) => S.requests(t, make(t)));
test('a TCP cut with gaps in 30 rooms: filled from history, paced', (t) => S.gapsInManyRooms(t, make(t), { pace: true }));
