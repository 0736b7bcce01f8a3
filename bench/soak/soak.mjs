// The soak run (bench/README.md, "Soak"): the real server, 19,000 WebSocket
// connections, and churn for 10 minutes — connects, abrupt drops and
// resumes, clean closes, joins, leaves, room messages, notices, stored
// notices — then every client goes, and the server must come back to its
// baseline: RSS, open files, held ids, queued bytes, stored notices.
//
//   ulimit -n 20000; node bench/soak/soak.mjs [--bin PATH] [--connections 19000] [--minutes 10] [--cycles 1]
//
// Writes bench/soak/out/samples.csv (one row every 5 s), a summary on
// stdout (JSON), and bench/soak.svg (RSS and connections over time).
// Figures are read from the server itself: /proc/<pid> (RSS, open files)
// and its /metrics (--metrics-listen), the same families an operator
// scrapes.
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '../..');
const arg = (name, dflt) => {
  const i = process.argv.indexOf('--' + name);
  return i > 0 ? process.argv[i + 1] : dflt;
};
const BIN = resolve(arg('bin', resolve(root, 'target/release/switchboard')));
const N = Number(arg('connections', 19000));
const MINUTES = Number(arg('minutes', 10));
// Crowds, one after another (each: ramp, churn, wind-down): whether what
// stays after one is reused by the next, or grows.
const CYCLES = Number(arg('cycles', 1));
const ROOMS = Math.max(1, Math.round(N / 40)); // ~40 members a room, ~1.5 rooms an id
const TICK_MS = 100;
// Per tick (10 a second), at full size: scaled with N.
const scale = N / 19000;
const PER_TICK = {
  drops: Math.max(1, Math.round(8 * scale)), // abrupt: no close frame
  closes: Math.max(1, Math.round(4 * scale)), // close 1000, back later as a new connection
  joins: Math.max(1, Math.round(15 * scale)),
  leaves: Math.max(1, Math.round(10 * scale)),
  room: Math.max(1, Math.round(20 * scale)),
  notices: Math.max(1, Math.round(20 * scale)),
};
const RESUME_WINDOW = 10; // s: a dropped id not back by then is let go
const OUT = resolve(here, 'out');

function freePort() {
  return new Promise((res, rej) => {
    const s = net.createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
  });
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const pick = (a) => a[Math.floor(Math.random() * a.length)];

// --- the server ---------------------------------------------------------
const port = await freePort();
const metricsPort = await freePort();
const server = spawn(
  BIN,
  [
    '--listen', `127.0.0.1:${port}`,
    '--admin-listen', 'off',
    '--metrics-listen', `127.0.0.1:${metricsPort}`,
    '--web-chat', 'false',
    '--log', 'warn',
    // Every client comes from 127.0.0.1.
    '--max-connections-per-ip', String(N + 1000),
    '--max-handshakes-per-ip', '1024',
    '--max-held', String(N),
    '--resume-window-secs', String(RESUME_WINDOW),
    // Short lives, so that at the end everything kept can expire within
    // the run: what must come back to its baseline.
    '--history-ttl-secs', '30',
    '--stored-notice-ttl-secs', '30',
  ],
  { stdio: ['ignore', 'ignore', 'inherit'] },
);
process.on('exit', () => server.kill('SIGKILL'));
for (let i = 0; ; i++) {
  const up = await new Promise((res) => {
    const c = net.connect(port, '127.0.0.1', () => (c.end(), res(true)));
    c.on('error', () => res(false));
  });
  if (up) break;
  if (i > 300) throw new Error('the server did not start');
  await sleep(100);
}

// --- sampling -------------------------------------------------------------
const FAMILIES = {
  open: 'switchboard_connections_open{transport="ws"}',
  held: 'switchboard_held_ids',
  queued: 'switchboard_outbound_queued_bytes',
  partial: 'switchboard_inbound_partial_bytes',
  stored: 'switchboard_stored_notices',
  stored_bytes: 'switchboard_stored_notice_bytes',
  history_bytes: 'switchboard_history_bytes',
  rooms: 'switchboard_rooms',
  deliveries: 'switchboard_room_deliveries_total',
  frames_in: 'switchboard_frames_in_total{type="text"}',
  overflows: 'switchboard_queue_overflows_total',
  limited: 'switchboard_limit_refusals_total{limit="messages_per_sec"}',
};
// A connection of its own each time (`agent: false`: `Connection: close`),
// closed before the next sample counts the server's open files: a kept-alive
// scrape connection would be one more file in some samples and not others.
function scrapeText() {
  return new Promise((res, rej) => {
    http.get({ host: '127.0.0.1', port: metricsPort, path: '/metrics', agent: false }, (r) => {
      let body = '';
      r.setEncoding('utf8');
      r.on('data', (d) => (body += d));
      r.on('error', rej);
      r.socket.on('close', () => res(body));
    }).on('error', rej);
  });
}
async function scrape() {
  const text = await scrapeText();
  const values = {};
  for (const line of text.split('\n')) {
    const at = line.lastIndexOf(' ');
    if (line.startsWith('#') || at < 0) continue;
    values[line.slice(0, at)] = Number(line.slice(at + 1));
  }
  const out = {};
  for (const [k, series] of Object.entries(FAMILIES)) out[k] = values[series] ?? 0;
  return out;
}
function proc() {
  const status = readFileSync(`/proc/${server.pid}/status`, 'utf8');
  const rss = Number(/VmRSS:\s+(\d+) kB/.exec(status)[1]) * 1024;
  const fds = readdirSync(`/proc/${server.pid}/fd`).length;
  return { rss, fds };
}
// Where the resident memory is, by kind of mapping (/proc/<pid>/smaps):
// the wasmtime pool (one reservation of hundreds of GiB for every policy
// instance's memories, tables and stacks: the largest mapping at the
// baseline, split into pieces later as instances come and go), mimalloc's
// arenas (1 GiB reservations: the heap), other anonymous memory, thread
// stacks, and the binary's own pages.
let poolRange = null;
function residentByKind() {
  // lazy_free: pages given back with MADV_FREE, still counted in RSS
  // until the kernel wants them (smaps' LazyFree).
  const out = { pool: 0, heap: 0, anon: 0, stack: 0, file: 0, lazy_free: 0 };
  const text = readFileSync(`/proc/${server.pid}/smaps`, 'utf8');
  const heads = [...text.matchAll(/^([0-9a-f]+)-([0-9a-f]+) /gm)].map((m) => [BigInt('0x' + m[1]), BigInt('0x' + m[2])]);
  if (!poolRange) {
    // The largest mapping, and its contiguous neighbours (an instance's
    // memory image is mapped into the reservation, splitting it).
    const i = heads.reduce((best, h, k) => (h[1] - h[0] > heads[best][1] - heads[best][0] ? k : best), 0);
    let [lo, hi] = [i, i];
    while (lo > 0 && heads[lo - 1][1] === heads[lo][0]) lo--;
    while (hi + 1 < heads.length && heads[hi + 1][0] === heads[hi][1]) hi++;
    poolRange = [heads[lo][0], heads[hi][1]];
  }
  let kind = null;
  for (const line of text.split('\n')) {
    const head = /^([0-9a-f]+)-([0-9a-f]+) \S+ \S+ \S+ \d+\s*(.*)$/.exec(line);
    if (head) {
      const [from, to] = [BigInt('0x' + head[1]), BigInt('0x' + head[2])];
      const name = head[3];
      kind = from >= poolRange[0] && to <= poolRange[1] ? 'pool'
        : name.startsWith('/') ? 'file'
        : name.startsWith('[stack') ? 'stack'
        : to - from >= 2n ** 30n ? 'heap'
        : 'anon';
      continue;
    }
    const rss = /^Rss:\s+(\d+) kB/.exec(line);
    if (rss && kind) out[kind] += Number(rss[1]) * 1024;
    const lazy = /^LazyFree:\s+(\d+) kB/.exec(line);
    if (lazy) out.lazy_free += Number(lazy[1]) * 1024;
  }
  return Object.fromEntries(Object.entries(out).map(([k, v]) => [k, +(v / 2 ** 20).toFixed(1)]));
}
const t0 = Date.now();
const samples = [];
let phase = 'baseline';
async function sample() {
  const s = { t: (Date.now() - t0) / 1000, phase, clients: live.size, ...proc(), ...(await scrape()) };
  samples.push(s);
  return s;
}

// --- clients --------------------------------------------------------------
const live = new Map(); // id -> {ws, session, rooms:Set}
const away = new Map(); // id -> {session, rooms, until} (dropped, may resume)
const stats = { connects: 0, resumes: 0, resumed_ok: 0, drops: 0, closes: 0, joins: 0, leaves: 0, room: 0, notices: 0, stored: 0, errors: {}, received: 0, failed_connects: 0 };
let ref = 0;

function open(id, session) {
  return new Promise((res) => {
    const url = `ws://127.0.0.1:${port}/ws/${id}` + (session ? `?resume=${session}` : '');
    const ws = new WebSocket(url, { perMessageDeflate: false });
    const c = { ws, session: undefined, rooms: new Set() };
    let settled = false;
    ws.on('message', (data) => {
      stats.received++;
      let m;
      try {
        m = JSON.parse(data);
      } catch {
        return;
      }
      if (m.type === 'welcome') {
        c.session = m.session;
        if (session && m.resumed) stats.resumed_ok++;
        if (!settled) (settled = true), res(c);
      } else if (m.type === 'error') {
        stats.errors[m.code] = (stats.errors[m.code] || 0) + 1;
      } else if (m.type === 'ack' && m.stored) {
        stats.stored++;
      }
    });
    ws.on('error', () => {
      if (!settled) (settled = true), stats.failed_connects++, res(null);
    });
    ws.on('close', () => {
      if (!settled) (settled = true), stats.failed_connects++, res(null);
      if (live.get(id) === c) live.delete(id);
    });
  });
}
const send = (c, frame) => c.ws.readyState === WebSocket.OPEN && c.ws.send(JSON.stringify({ ...frame, ref: ++ref }));
const roomName = () => `room-${Math.floor(Math.random() * ROOMS)}`;

let accepting = true; // false from the wind-down: late reconnects stay away
async function connect(id, session, rooms) {
  if (!accepting) return;
  const c = await open(id, session);
  if (!c) return;
  // Counted with its welcome (as `resumed_ok` is), even when the wind-down
  // began meanwhile and it is closed at once.
  if (session) stats.resumes++;
  if (!accepting) return c.ws.close(1000);
  live.set(id, c);
  stats.connects++;
  // A resumed id keeps its rooms; a new connection joins one or two.
  if (rooms && session) c.rooms = rooms;
  else
    for (let k = 0; k < 1 + (Math.random() < 0.5 ? 1 : 0); k++) {
      const r = roomName();
      c.rooms.add(r);
      send(c, { type: 'join', room: r });
    }
}

// Ramp up: in batches, as fast as the server takes them.
phase = 'baseline';
for (let i = 0; i < 3; i++) (await sample(), await sleep(1000));
const baseline = samples[samples.length - 1];
const baselineResident = residentByKind();
const ids = Array.from({ length: N }, (_, i) => `u${i}`);
const cycles = [];
const mib = (b) => +(b / 2 ** 20).toFixed(1);
// What must come back to its baseline, from one sample.
const kept = (s) => ({ fds: s.fds, held: s.held, queued: s.queued, stored: s.stored, history_bytes: s.history_bytes, open: s.open });
for (let cycle = 1; cycle <= CYCLES; cycle++) {
const cycleStart = samples.length;
const rampStart = Date.now();
phase = 'ramp';
accepting = true;
let next = 0;
while (next < N) {
  const batch = ids.slice(next, next + 200);
  next += batch.length;
  await Promise.all(batch.map((id) => connect(id)));
}
await sample();
console.error(`cycle ${cycle}: ramped to ${live.size} connections in ${((Date.now() - rampStart) / 1000).toFixed(1)} s`);

// The churn.
phase = 'soak';
const end = Date.now() + MINUTES * 60_000;
let nextSample = Date.now() + 5000;
while (Date.now() < end) {
  const tick = Date.now();
  const liveIds = [...live.keys()];
  for (let k = 0; k < PER_TICK.drops && liveIds.length; k++) {
    const id = pick(liveIds);
    const c = live.get(id);
    if (!c) continue;
    live.delete(id);
    c.ws.terminate(); // abrupt: the server holds the id
    stats.drops++;
    // Most come back within the window and resume; some too late, fresh.
    const back = Math.random() < 0.75 ? 500 + Math.random() * 4000 : (RESUME_WINDOW + 2 + Math.random() * 10) * 1000;
    away.set(id, { session: c.session, rooms: c.rooms });
    setTimeout(() => {
      const a = away.get(id);
      away.delete(id);
      if (!live.has(id)) connect(id, back < RESUME_WINDOW * 1000 ? a && a.session : undefined, a && a.rooms);
    }, back);
  }
  for (let k = 0; k < PER_TICK.closes && liveIds.length; k++) {
    const id = pick(liveIds);
    const c = live.get(id);
    if (!c) continue;
    live.delete(id);
    c.ws.close(1000);
    stats.closes++;
    setTimeout(() => !live.has(id) && !away.has(id) && connect(id), 1000 + Math.random() * 4000);
  }
  for (let k = 0; k < PER_TICK.joins; k++) {
    const c = live.get(pick(liveIds));
    if (!c || c.rooms.size >= 4) continue;
    const r = roomName();
    c.rooms.add(r);
    send(c, { type: 'join', room: r });
    stats.joins++;
  }
  for (let k = 0; k < PER_TICK.leaves; k++) {
    const c = live.get(pick(liveIds));
    if (!c || c.rooms.size <= 1) continue;
    const r = pick([...c.rooms]);
    c.rooms.delete(r);
    send(c, { type: 'leave', room: r });
    stats.leaves++;
  }
  for (let k = 0; k < PER_TICK.room; k++) {
    const c = live.get(pick(liveIds));
    if (!c || !c.rooms.size) continue;
    send(c, { type: 'room', room: pick([...c.rooms]), data: { text: 'soak', at: Date.now() } });
    stats.room++;
  }
  for (let k = 0; k < PER_TICK.notices; k++) {
    const c = live.get(pick(liveIds));
    if (!c) continue;
    // Any id, online or not: those away get it stored.
    send(c, { type: 'notice', to: pick(ids), data: { text: 'psst' }, store: true });
    stats.notices++;
  }
  if (Date.now() >= nextSample) {
    nextSample += 5000;
    const s = await sample();
    console.error(`${s.t.toFixed(0)} s: ${s.open} open, ${s.held} held, rss ${(s.rss / 2 ** 20).toFixed(0)} MiB, fds ${s.fds}`);
  }
  await sleep(Math.max(0, TICK_MS - (Date.now() - tick)));
}

// Wind down: every client goes (1000), then wait until what the server
// keeps has expired, and sample it back at its baseline.
phase = 'wind-down';
accepting = false;
for (const c of live.values()) c.ws.close(1000);
const windDown = Date.now();
while (Date.now() - windDown < 90_000) {
  await sleep(5000);
  const s = await sample();
  if (s.open === 0 && s.held === 0 && s.stored === 0 && s.history_bytes === 0 && s.queued === 0 && Date.now() - windDown > 45_000) break;
}
phase = 'after';
for (let i = 0; i < 3; i++) (await sample(), await sleep(2000));
const last = samples[samples.length - 1];
const top = samples.slice(cycleStart).reduce((m, s) => (s.rss > m.rss ? s : m));
cycles.push({ cycle, peak_rss_mib: mib(top.rss), after_rss_mib: mib(last.rss), after: kept(last), resident_mib: residentByKind() });
console.error(`cycle ${cycle}: after ${cycles.at(-1).after_rss_mib} MiB (peak ${cycles.at(-1).peak_rss_mib})`);
}
const after = samples[samples.length - 1];
const afterResident = cycles.at(-1).resident_mib;
const peak = samples.reduce((m, s) => (s.rss > m.rss ? s : m), samples[0]);

// --- output ---------------------------------------------------------------
mkdirSync(OUT, { recursive: true });
const cols = ['t', 'phase', 'clients', 'rss', 'fds', ...Object.keys(FAMILIES)];
writeFileSync(resolve(OUT, 'samples.csv'), [cols.join(','), ...samples.map((s) => cols.map((c) => s[c]).join(','))].join('\n') + '\n');
const summary = {
  connections: N,
  minutes: MINUTES,
  per_second: Object.fromEntries(Object.entries(PER_TICK).map(([k, v]) => [k, v * (1000 / TICK_MS)])),
  stats,
  baseline: { rss_mib: mib(baseline.rss), ...kept(baseline) },
  peak: { rss_mib: mib(peak.rss), at_s: peak.t, open: peak.open },
  cycles,
  // Resident MiB by kind of mapping (residentByKind).
  resident_mib: { baseline: baselineResident, after: afterResident },
  after: { rss_mib: mib(after.rss), ...kept(after) },
};
console.log(JSON.stringify(summary, null, 2));
writeFileSync(resolve(OUT, 'summary.json'), JSON.stringify(summary, null, 2) + '\n');
writeFileSync(resolve(root, 'bench/soak.svg'), svg(samples));
server.kill('SIGTERM');
process.exit(0);

/** RSS (MiB, left axis) and open connections (right axis) over time. */
function svg(rows) {
  const W = 900, H = 380, L = 70, R = 70, T = 40, B = 50;
  const tMax = Math.max(...rows.map((r) => r.t));
  const rssMax = Math.max(...rows.map((r) => r.rss)) / 2 ** 20;
  const openMax = Math.max(1, ...rows.map((r) => r.open));
  const x = (t) => L + ((W - L - R) * t) / tMax;
  const yR = (v) => H - B - ((H - T - B) * v) / (rssMax * 1.1);
  const yO = (v) => H - B - ((H - T - B) * v) / (openMax * 1.1);
  const line = (f, color) => `<polyline fill="none" stroke="${color}" stroke-width="2" points="${rows.map((r) => `${x(r.t).toFixed(1)},${f(r).toFixed(1)}`).join(' ')}"/>`;
  const ticks = [];
  for (let i = 0; i <= 5; i++) {
    const v = (rssMax * 1.1 * i) / 5;
    const o = (openMax * 1.1 * i) / 5;
    const y = H - B - ((H - T - B) * i) / 5;
    ticks.push(`<line x1="${L}" x2="${W - R}" y1="${y}" y2="${y}" stroke="#e2e8f0"/>`);
    ticks.push(`<text x="${L - 6}" y="${y + 4}" text-anchor="end" fill="#2b6cb0">${v.toFixed(0)}</text>`);
    ticks.push(`<text x="${W - R + 6}" y="${y + 4}" fill="#c05621">${Math.round(o)}</text>`);
  }
  for (let i = 0; i <= 6; i++) {
    const t = (tMax * i) / 6;
    ticks.push(`<text x="${x(t)}" y="${H - B + 18}" text-anchor="middle">${(t / 60).toFixed(1)}</text>`);
  }
  const phases = [];
  let prev = null;
  for (const r of rows) {
    if (r.phase !== prev) phases.push(`<line x1="${x(r.t)}" x2="${x(r.t)}" y1="${T}" y2="${H - B}" stroke="#a0aec0" stroke-dasharray="4 3"/><text x="${x(r.t) + 4}" y="${T + 12}" fill="#4a5568">${r.phase}</text>`);
    prev = r.phase;
  }
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="#fff"/>
<text x="${W / 2}" y="22" text-anchor="middle" font-size="15">Soak: ${N} connections with churn for ${MINUTES} min (bench/soak/soak.mjs)</text>
${ticks.join('\n')}
${phases.join('\n')}
${line((r) => yR(r.rss / 2 ** 20), '#2b6cb0')}
${line((r) => yO(r.open), '#c05621')}
<text x="${L - 50}" y="${T - 10}" fill="#2b6cb0">RSS (MiB)</text>
<text x="${W - R - 30}" y="${T - 10}" fill="#c05621">connections</text>
<text x="${W / 2}" y="${H - 12}" text-anchor="middle">minutes</text>
</svg>
`;
}
