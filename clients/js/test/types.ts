// Compiled (not run) by `npm test`: the published declarations type the API
// the README shows. A consumer's view: imports go through the package name.
import { Switchboard, SwitchboardError, type JoinAck, type Limits, type StateEvent } from 'switchboard-client';

const sb = new Switchboard({
  url: 'ws://127.0.0.1:3001',
  id: 'alice',
  token: async () => 'jwt',
  transport: 'auto',
  requestTimeoutMs: 10000,
  pingIntervalMs: 25000,
  pongTimeoutMs: 10000,
  backoff: { initialMs: 1000, maxMs: 30000 },
  limits: { messagesPerSec: 50, messagesBurst: 100, queriesPerSec: 5, queriesBurst: 20 },
  maxRetries: 5,
});
const welcome: Promise<{ id: string; session: string; resumed: boolean }> = sb.connect();
const state: 'connecting' | 'open' | 'resuming' | 'closed' = sb.state;
const id: string | undefined = sb.id;
const session: string | undefined = sb.session;
const onState = ({ state, code, reason, error }: StateEvent) => [state, code, reason, error && error.code];
sb.on('state', onState).off('state', onState);
sb.on('welcome', ({ id, session, resumed }) => [id, session, resumed]);
sb.on('notice', ({ from, data, stored_at }) => [from, data, stored_at]);
sb.on('notices-dropped', ({ count }) => count + 1);
sb.on('broadcast', ({ from, data }) => [from, data]);
sb.on('error', (err) => err instanceof SwitchboardError && err.code);
const lobby = sb.room('lobby');
async function use() {
  const ack: JoinAck = await lobby.join();
  const n: number = ack.offset;
  lobby.on('message', ({ from, data, offset }) => [from, data, offset]);
  lobby.on('joined', ({ id }) => id);
  lobby.on('left', ({ id }) => id);
  lobby.on('recovery-failed', ({ epoch, offset, since }) => [epoch, offset, since.offset]);
  await lobby.send({ text: 'hi' });
  const h = await lobby.history({ limit: 10, before: 5 });
  const first: number | undefined = h.messages[0].offset;
  const m = await lobby.members();
  const count: number = m.count + m.ids.length;
  await lobby.leave();
  const held: boolean | undefined = (await sb.notice('bob', { x: 1 }, { store: true })).stored;
  await sb.broadcast('all');
  const online: string[] = await sb.online(['a', 'b']);
  sb.close();
  return [n, first, count, held, online, welcome, state, id, session];
}
const limits: Limits = { queriesPerSec: 0 };
void use;
void limits;
