// Test helpers: the real switchboard binary on 127.0.0.1:0, a TCP proxy the
// test can cut, token minting, and waiting for events (timeouts only guard
// against a hang; nothing here sleeps to synchronise).
import { spawn } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import net from 'node:net';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
export const BIN = resolve(here, '..', process.env.SWITCHBOARD_BIN || '../../target/debug/switchboard');
if (!existsSync(BIN)) throw new Error(`no switchboard binary at ${BIN}: build it (cargo build -p switchboard) or set SWITCHBOARD_BIN`);

/** Starts a server; `t.after` stops it. Returns {port, url, pid, pause(), resume(), stop()}. */
export async function startServer(t, args = []) {
  // No admin interface unless the test asks for one.
  const admin = args.includes('--admin-listen') ? [] : ['--admin-listen', 'off'];
  const proc = spawn(BIN, ['--listen', '127.0.0.1:0', ...admin, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, NO_COLOR: '1', RUST_LOG: process.env.RUST_LOG || 'info' },
  });
  let log = '';
  let paused = false;
  const port = await new Promise((res, rej) => {
    const guard = setTimeout(() => rej(new Error('the server did not say where it listens:\n' + log)), 20000);
    const read = (d) => {
      // Keep reading (a full pipe would block the server); keep the start for errors.
      if (log.length < 20000) log += String(d).replace(/\x1b\[[0-9;]*m/g, '');
      const m = log.match(/listening on ws:\/\/127\.0\.0\.1:(\d+)/);
      if (m) {
        clearTimeout(guard);
        res(Number(m[1]));
      }
    };
    proc.stdout.on('data', read);
    proc.stderr.on('data', read);
    proc.on('exit', (code) => {
      clearTimeout(guard);
      rej(new Error(`the server exited (${code}):\n${log}`));
    });
  });
  const server = {
    port,
    url: `ws://127.0.0.1:${port}`,
    pid: proc.pid,
    /** SIGSTOP; resolves once every thread of the server has stopped. */
    async pause() {
      paused = true;
      process.kill(proc.pid, 'SIGSTOP');
      const stopped = () => {
        try {
          return readdirSync(`/proc/${proc.pid}/task`).every((tid) => /^\d+ \(.*\) [tT] /.test(readFileSync(`/proc/${proc.pid}/task/${tid}/stat`, 'utf8')));
        } catch {
          return true; // no /proc here: the signal is as good as delivered
        }
      };
      for (let i = 0; i < 1000 && !stopped(); i++) await new Promise((r) => setImmediate(r));
    },
    resume() {
      if (paused) process.kill(proc.pid, 'SIGCONT');
      paused = false;
    },
    async stop() {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      const gone = new Promise((r) => proc.once('exit', r));
      server.resume();
      proc.kill('SIGKILL');
      await gone;
    },
  };
  proc.removeAllListeners('exit');
  /** Resolves with {code, signal} once the process has exited. */
  server.exited = new Promise((r) => proc.once('exit', (code, signal) => r({ code, signal })));
  t.after(() => server.stop());
  return server;
}

/** A free TCP port on 127.0.0.1. */
export function freePort() {
  return new Promise((res, rej) => {
    const s = net.createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
  });
}

/** A load balancer in front of `ports`: each new connection goes to the
 *  first of them that accepts (a draining server has closed its listener,
 *  so its clients' reconnects land on the next). */
export async function balancer(t, ports) {
  const socks = new Set();
  const srv = net.createServer((c) => {
    c.pause();
    socks.add(c);
    const tryPort = (i) => {
      if (i >= ports.length) return c.destroy();
      const up = net.connect(ports[i], '127.0.0.1');
      up.once('error', () => {
        socks.delete(up);
        tryPort(i + 1);
      });
      up.once('connect', () => {
        socks.add(up);
        const end = () => {
          c.destroy();
          up.destroy();
          socks.delete(c);
          socks.delete(up);
        };
        for (const s of [c, up]) {
          s.on('close', end);
          s.on('error', end);
        }
        c.pipe(up);
        up.pipe(c);
        c.resume();
      });
    };
    tryPort(0);
  });
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  t.after(() => {
    for (const s of socks) s.destroy();
    return new Promise((r) => srv.close(r));
  });
  return { url: `ws://127.0.0.1:${srv.address().port}` };
}

/** A TCP proxy in front of `port`: `cut()` destroys every connection through it
 *  (no close frame: the abrupt drop of a phone losing its network); `hold(true)`
 *  stops passing what clients send (the server never sees it); `mute(true)`
 *  throws away what the server sends (it was written: the server cannot send
 *  it again), and `discarded(pred)` resolves once what was thrown away, as
 *  text (server frames are not masked), satisfies `pred`. */
export async function tcpProxy(t, port) {
  const socks = new Set();
  let held = false;
  let muted = false;
  let lost = '';
  let waiters = [];
  let accepted = 0;
  const srv = net.createServer((c) => {
    accepted++;
    const up = net.connect(port, '127.0.0.1');
    socks.add(c);
    socks.add(up);
    c.on('data', (d) => {
      if (!held) up.write(d);
    });
    up.on('data', (d) => {
      if (!muted) return c.write(d);
      lost += d.toString('latin1');
      waiters = waiters.filter((w) => !w());
    });
    const end = () => {
      c.destroy();
      up.destroy();
      socks.delete(c);
      socks.delete(up);
    };
    for (const s of [c, up]) {
      s.on('close', end);
      s.on('error', end);
    }
  });
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  const proxy = {
    url: `ws://127.0.0.1:${srv.address().port}`,
    get accepted() {
      return accepted;
    },
    cut() {
      for (const s of socks) s.destroy();
      socks.clear();
      held = muted = false;
    },
    hold(v) {
      held = v;
    },
    mute(v) {
      muted = v;
    },
    discarded(pred) {
      return new Promise((res) => {
        const w = () => pred(lost) && (res(lost), true);
        if (!w()) waiters.push(w);
      });
    },
    close() {
      proxy.cut();
      return new Promise((r) => srv.close(r));
    },
  };
  t.after(() => proxy.close());
  return proxy;
}

/** An HS256 JWT, signed with node's crypto. */
export function mintToken(secret, claims) {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const head = b64({ alg: 'HS256', typ: 'JWT' });
  const body = b64(claims);
  const sig = createHmac('sha256', secret).update(`${head}.${body}`).digest('base64url');
  return `${head}.${body}.${sig}`;
}
export const SECRET = 'a-test-secret-of-at-least-32-bytes-0123456789';
export const token = (sub, ttl = 3600) => mintToken(SECRET, { sub, exp: Math.floor(Date.now() / 1000) + ttl });

/** Resolves with the first `event` (on an emitter with on/off) that `pred` accepts. */
export function waitFor(em, event, pred = () => true, ms = 10000) {
  return new Promise((res, rej) => {
    const fn = (e) => {
      if (!pred(e)) return;
      clearTimeout(guard);
      em.off(event, fn);
      res(e);
    };
    const guard = setTimeout(() => {
      em.off(event, fn);
      rej(new Error(`timed out waiting for ${String(event)}`));
    }, ms);
    em.on(event, fn);
  });
}

/** Records every `state` event of a client. */
export function states(sb) {
  const seen = [];
  sb.on('state', (s) => seen.push(s));
  return seen;
}

/** Closes the clients when the test ends. */
export function closing(t, ...clients) {
  t.after(() => clients.forEach((c) => c.close()));
  return clients;
}

export const range = (a, b) => Array.from({ length: b - a + 1 }, (_, i) => a + i);

/** Rejects if `p` has not settled within `ms` (a hang guard). */
export function within(p, ms, what) {
  let guard;
  return Promise.race([
    p,
    new Promise((_, rej) => {
      guard = setTimeout(() => rej(new Error(`timed out: ${what}`)), ms);
    }),
  ]).finally(() => clearTimeout(guard));
}
