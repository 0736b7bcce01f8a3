import { Emitter } from './emitter.js';

// ---------------------------------------------------------------------------
// Public types

export type State = 'connecting' | 'open' | 'resuming' | 'closed';
export type TransportName = 'auto' | 'browser' | 'node' | 'wx';

export interface SwitchboardOptions {
  /** Server base URL (`ws://host:3001`, `wss://chat.example.com`); the client appends `/ws/<id>` (or `/ws`). In a browser it defaults to the page's own host. */
  url?: string;
  /** The id to connect as (1–64 of `A-Z a-z 0-9 _ . -`). May be left out when a token is given: the token's `sub` is the id. */
  id?: string;
  /** A signed token, sent as `?token=`; a function is called before every (re)connect. */
  token?: string | (() => string | Promise<string>);
  /** Which socket API to use; `auto` (default) picks wx, then Node, then the browser's WebSocket. */
  transport?: TransportName;
  /** How long a request may wait for a connection, or for its answer once sent (default 10 000 ms). Restarted at each send; time spent waiting its turn under the rate limits does not count. */
  requestTimeoutMs?: number;
  /** The server's rate limits (its defaults: 50 frames a second, bursts of 100; 5 queries a second, bursts of 20). The client paces what it sends at 90 % of them; 0 turns pacing off for that bucket. */
  limits?: Limits;
  /** How many times a request refused with `rate-limited` is sent again, after the `retry_after_ms` the server asked for (default 5). */
  maxRetries?: number;
  /** How often to send the application `ping` (default 25 000 ms). */
  pingIntervalMs?: number;
  /** How long after a ping to wait for anything before the socket is taken as dead (default 10 000 ms). */
  pongTimeoutMs?: number;
  /** How long a connection attempt may take to reach the welcome (default 10 000 ms). */
  connectTimeoutMs?: number;
  /** Reconnect delays: `initialMs * 2^n`, ±50 % jitter, at most `maxMs` (defaults 1 000 and 30 000). */
  backoff?: { initialMs?: number; maxMs?: number };
  /** After close 1012 (the server is restarting: a drain), reconnect at once, after a random wait of up to this many ms so that a node's clients do not all arrive together (default 1 000). */
  restartJitterMs?: number;
  /** How many requests may wait for a connection (default 100); past it they are rejected with `queue-full`. */
  maxQueue?: number;
}

/** The server's per-connection rate limits (`--messages-per-sec`, `--messages-burst`, `--queries-per-sec`, `--queries-burst`). */
export interface Limits {
  /** Frames a second (every frame counts: requests, joins, heartbeats). Default 50. */
  messagesPerSec?: number;
  /** Frames at once. Default 100. */
  messagesBurst?: number;
  /** `members`, `online` and `history` requests a second. Default 5. */
  queriesPerSec?: number;
  /** Queries at once. Default 20. */
  queriesBurst?: number;
}

export interface StateEvent {
  state: State;
  /** The close code of the connection that ended (4000: closed by this client, see `reason`). */
  code?: number;
  reason?: string;
  error?: SwitchboardError;
}
export interface WelcomeEvent {
  id: string;
  session: string;
  resumed: boolean;
}
export interface NoticeEvent {
  from: string;
  data: unknown;
  /** Set when the notice was stored for you while you were offline (RFC 3339). */
  stored_at?: string;
}
export interface BroadcastEvent {
  from: string;
  data: unknown;
}
export interface RoomMessage {
  room: string;
  from: string;
  data: unknown;
  /** The message's place in the room's history (absent when the server keeps none). */
  offset?: number;
}
export interface JoinAck {
  epoch: string;
  offset: number;
  recovered?: boolean;
}
export interface NoticeAck {
  held?: boolean;
  stored?: boolean;
}
export interface HistoryResult {
  room: string;
  epoch: string;
  messages: Array<RoomMessage & { type: 'room' }>;
}
export interface MembersResult {
  ids: string[];
  count: number;
}
export interface Position {
  epoch: string;
  offset: number;
}
export interface RecoveryFailedEvent {
  room: string;
  /** Where the room's history stands now (the join ack's). */
  epoch: string;
  offset: number;
  /** The position the client asked to recover from. */
  since: Position;
}

export interface SwitchboardEvents {
  state: StateEvent;
  /** The same as `state`, under the name of the state it enters. */
  connecting: StateEvent;
  open: StateEvent;
  resuming: StateEvent;
  closed: StateEvent;
  welcome: WelcomeEvent;
  notice: NoticeEvent;
  'notices-dropped': { count: number };
  broadcast: BroadcastEvent;
  error: SwitchboardError;
  /** Every frame the server sends, as parsed JSON, before it is handled. */
  frame: { type: string; [k: string]: unknown };
}
export interface RoomEvents {
  message: RoomMessage;
  joined: { room: string; id: string };
  left: { room: string; id: string };
  'recovery-failed': RecoveryFailedEvent;
}

/** Every failure the client reports: `code` is one of the client's own codes
 *  (`connection-lost`, `timeout`, `closed`, `queue-full`, `replaced`,
 *  `unauthorized`, `refused`, `no-transport`, `transport`, `bad-frame`) or the
 *  server's error code (`not-in-room`, `rate-limited`, …). */
export class SwitchboardError extends Error {
  code: string;
  /** HTTP status of a refused handshake (401, 400, 404, …). */
  status?: number;
  /** From a `rate-limited` error: wait at least this long. */
  retryAfterMs?: number;
  /** The server's error frame, for server errors. */
  frame?: Record<string, unknown>;
  constructor(code: string, message: string, extra?: { status?: number; retryAfterMs?: number; frame?: Record<string, unknown>; cause?: unknown }) {
    super(message);
    this.name = 'SwitchboardError';
    this.code = code;
    if (extra) for (const k in extra) if ((extra as any)[k] !== undefined) (this as any)[k] = (extra as any)[k];
  }
}

// ---------------------------------------------------------------------------
// Transports

/** @internal How a connection ended. */
export interface CloseInfo {
  code: number;
  reason: string;
  /** HTTP status of a refused handshake, when the transport can see it. */
  status?: number;
  /** The refusal's body (the server's reason), when the transport can see it. */
  body?: string;
  error?: unknown;
  /** Set by a transport that cannot work at all (no WebSocket, no `ws`). */
  fatal?: SwitchboardError;
}
/** @internal */
export interface TransportEvents {
  open(): void;
  message(text: string): void;
  close(info: CloseInfo): void;
}
/** @internal */
export interface Conn {
  send(text: string): void;
  close(code: number, reason: string): void;
}
/** @internal */
export interface Transport {
  open(url: string, ev: TransportEvents): Conn;
  /** True when a refused handshake's HTTP status reaches `close` (no probe needed). */
  knowsStatus?: boolean;
  /** A plain HTTP GET of the socket URL: the status the upgrade would get. */
  probe?(url: string, timeoutMs: number): Promise<number | undefined>;
}
/** @internal Filled by the entry points, so each bundle holds only the transports it can use. */
export const transports: { [K in Exclude<TransportName, 'auto'>]?: () => Transport | undefined } = {};

/** @internal */
export const G: any =
  typeof globalThis !== 'undefined' ? globalThis : typeof self !== 'undefined' ? self : typeof window !== 'undefined' ? window : {};
declare const self: any, window: any;

function pickTransport(name: TransportName): Transport | undefined {
  if (name === 'auto') {
    if (typeof wx !== 'undefined' && wx && wx.connectSocket && transports.wx) name = 'wx';
    else if (typeof process !== 'undefined' && process && process.versions && process.versions.node && transports.node) name = 'node';
    else name = 'browser';
  }
  const f = transports[name];
  return f && f();
}

// ---------------------------------------------------------------------------
// The client

interface Req {
  /** 0: the heartbeat's ping (no answer awaited). */
  ref: number;
  frame: Record<string, unknown>;
  resolve(frame: any): void;
  reject(err: SwitchboardError): void;
  timer: any;
  /** A query (`members`, `online`, `history`): it also takes from the query bucket. */
  q: boolean;
  /** Made by the client itself (a re-join, a gap fill, a ping): dropped with its connection, made again after the next welcome. */
  own?: boolean;
  /** Times it was refused with `rate-limited`. */
  n: number;
  /** Not sent again before this time (ms), after a `rate-limited`. */
  at: number;
}

/** A token bucket as the server keeps one: `rate` a second, at most `burst`
 *  at once (rate 0: no pacing). After a `rate-limited` answer the server's
 *  says when it has a token again: `hold` waits until then. */
class Bucket {
  private n: number;
  private t = 0;
  private until = 0;
  constructor(
    private rate: number,
    private burst: number,
  ) {
    this.n = burst;
  }
  /** How long until a token is there (0: now; then `take` it). */
  wait(now: number): number {
    if (now < this.until) return this.until - now;
    if (!this.rate) return 0;
    this.n = Math.min(this.burst, this.n + ((now - this.t) * this.rate) / 1000);
    this.t = now;
    return this.n >= 1 ? 0 : Math.ceil(((1 - this.n) * 1000) / this.rate);
  }
  take() {
    this.n--;
  }
  /** Nothing before `until`; then one token, and the rate from there. */
  hold(until: number) {
    this.until = this.t = Math.max(this.until, until);
    this.n = 1;
  }
}
/** The server's query bucket takes these. */
const QUERY = /^(members|online|history)$/;
/** Paced at this share of the server's limits: jitter on the way may bunch frames up. */
const MARGIN = 0.9;
function bucket(rate: number | undefined, burst: number | undefined, r: number, b: number) {
  const n = (v: number | undefined, d: number) => (typeof v === 'number' && v >= 0 ? v : d);
  return new Bucket(n(rate, r) * MARGIN, Math.max(1, Math.floor(n(burst, b) * MARGIN)));
}
interface Deferred<T> {
  promise: Promise<T>;
  resolve(v: T): void;
  reject(e: unknown): void;
}
function deferred<T>(): Deferred<T> {
  const d = {} as Deferred<T>;
  d.promise = new Promise<T>((res, rej) => {
    d.resolve = res;
    d.reject = rej;
  });
  d.promise.catch(noop); // an app that never awaits connect() must not crash on its rejection
  return d;
}
function noop() {}
const enc = encodeURIComponent;
const LOCAL = 4000; // close code this client uses for a socket it gives up on (the server holds the session)

/** One connection to a Switchboard server, kept alive across drops. */
export class Switchboard extends Emitter<SwitchboardEvents> {
  /** `connecting`, `open`, `resuming` or `closed` (before `connect()` and after `close()`). */
  state: State = 'closed';
  /** The id: the option, then the welcome's. */
  id?: string;
  /** The session of the last welcome (used to resume after a drop). */
  session?: string;

  private o: SwitchboardOptions;
  private conn?: Conn;
  private gen = 0; // the current attempt; callbacks of older attempts are ignored
  private opened = false; // the current socket reached open
  private welcomed = false; // the current socket got its welcome
  private stopped = true;
  private attempt = 0;
  private nextRef = 1;
  private pending = new Map<number, Req>();
  private queue: Req[] = []; // waiting for a connection (a welcome)
  private out: Req[] = []; // waiting their turn under the rate limits
  private fb: Bucket; // frames
  private qb: Bucket; // queries
  private tPace: any;
  private pinging = false; // a ping waits in `out`
  private rooms = new Map<string, Room>();
  private ready?: Deferred<WelcomeEvent>;
  private last?: WelcomeEvent;
  private tRetry: any;
  private tPing: any;
  private tPong: any;
  private tConnect: any;

  constructor(options: SwitchboardOptions) {
    super();
    this.o = options || {};
    this.id = this.o.id;
    const l = this.o.limits || {};
    this.fb = bucket(l.messagesPerSec, l.messagesBurst, 50, 100);
    this.qb = bucket(l.queriesPerSec, l.queriesBurst, 5, 20);
    if (!this.o.id && !this.o.token) throw new SwitchboardError('bad-options', 'Switchboard: give an `id`, a `token`, or both');
  }

  /** Starts connecting (or, while waiting to reconnect, tries at once). Resolves at the first welcome; rejects if the client closes first (`close()`, 4001, 401). */
  connect(): Promise<WelcomeEvent> {
    if (this.state === 'open' && this.last) return Promise.resolve(this.last);
    if (!this.ready) this.ready = deferred();
    const p = this.ready.promise;
    if (this.stopped) {
      this.stopped = false;
      this.attempt = 0;
      this.dial();
    } else if (!this.conn) this.dial(); // backing off (or probing): try now
    return p;
  }

  /** Closes the connection for good (code 1000: the server drops the session): state `closed`, no reconnect, waiting requests rejected with `closed`. Joined rooms are re-joined by a later `connect()`. */
  close(): void {
    if (this.stopped && !this.conn) return;
    this.session = undefined;
    this.fail(new SwitchboardError('closed', 'closed by the client'), { code: 1000, reason: 'closed by the client' });
  }

  /** The handle of a room (the same object for the same name). */
  room(name: string): Room {
    let r = this.rooms.get(name);
    if (!r) this.rooms.set(name, (r = new Room(this, name)));
    return r;
  }

  /** A private message. With `{store: true}` it is kept for an offline target. Resolves with the ack's `held` / `stored`. */
  notice(to: string, data: unknown, opts?: { store?: boolean }): Promise<NoticeAck> {
    return this.request({ type: 'notice', to, data: def(data), store: opts && opts.store ? true : undefined }).then(strip);
  }

  /** Sends `data` to every other connection online. */
  broadcast(data: unknown): Promise<void> {
    return this.request({ type: 'broadcast', data: def(data) }).then(noop);
  }

  /** Which of these ids (at most 100) are online, in the order asked. */
  online(ids: string[]): Promise<string[]> {
    return this.request({ type: 'online', ids }).then((f) => f.ids);
  }

  /** Sends any request (a `type` and its fields); resolves with its answer frame (`ack` or the answer), rejects with its `error`. */
  request(frame: { type: string; [k: string]: unknown }): Promise<any> {
    return this.ask(frame);
  }

  /** @internal `own`: a request of the client's own (see `Req`). */
  ask(frame: { type: string; [k: string]: unknown }, own?: boolean): Promise<any> {
    return new Promise((resolve, reject) => {
      if (this.stopped) return reject(new SwitchboardError('closed', 'the client is closed: call connect() first'));
      const ref = this.nextRef++;
      const r: Req = { ref, frame: { ...frame, ref }, resolve, reject, timer: 0, q: QUERY.test(frame.type), own, n: 0, at: 0 };
      if (this.welcomed) this.enqueue(r);
      else if (this.queue.length >= (this.o.maxQueue || 100)) reject(new SwitchboardError('queue-full', 'too many requests waiting for the connection'));
      else {
        this.queue.push(r);
        this.arm(r);
      }
    });
  }

  // -------------------------------------------------------------------------

  /** (Re)starts a request's timeout: it waits for a connection, or for its answer. */
  private arm(r: Req) {
    clearTimeout(r.timer);
    const ms = this.o.requestTimeoutMs || 10000;
    r.timer = setTimeout(() => {
      const i = this.queue.indexOf(r);
      if (i >= 0) this.queue.splice(i, 1);
      this.pending.delete(r.ref);
      r.reject(new SwitchboardError('timeout', `no answer to \`${r.frame.type}\` within ${ms} ms`));
    }, ms);
  }

  private url(token: string | undefined, resume: boolean): string {
    let base = this.o.url;
    if (!base && G.location && G.location.host) base = (G.location.protocol === 'https:' ? 'wss://' : 'ws://') + G.location.host;
    let u = String(base || '').replace(/\/+$/, '') + '/ws' + (this.o.id ? '/' + enc(this.o.id) : '');
    const q: string[] = [];
    if (token) q.push('token=' + enc(token));
    if (resume && this.session) q.push('resume=' + enc(this.session));
    return q.length ? u + '?' + q.join('&') : u;
  }

  private setState(state: State, info?: { code?: number; reason?: string; error?: SwitchboardError }) {
    if (state === this.state && !info) return;
    this.state = state;
    const ev = { state, ...info };
    this.emit('state', ev);
    this.emit(state, ev);
  }

  private stopTimers() {
    clearTimeout(this.tRetry);
    clearInterval(this.tPing);
    clearTimeout(this.tPong);
    clearTimeout(this.tConnect);
    clearTimeout(this.tPace);
    this.tPong = undefined;
    this.pinging = false;
  }

  /** Starts one connection attempt. */
  private dial() {
    const g = ++this.gen;
    this.stopTimers();
    this.opened = this.welcomed = false;
    this.setState(this.session ? 'resuming' : 'connecting');
    const t = pickTransport(this.o.transport || 'auto');
    if (!t) return this.fail(new SwitchboardError('no-transport', `no WebSocket for transport \`${this.o.transport || 'auto'}\` here`));
    const tok = this.o.token;
    Promise.resolve()
      .then(() => (typeof tok === 'function' ? tok() : tok))
      .then(
        (token) => {
          if (g !== this.gen) return;
          this.lastToken = token;
          const probe = t.probe && !t.knowsStatus ? t : undefined;
          this.tConnect = setTimeout(() => g === this.gen && this.drop({ code: LOCAL, reason: 'connect timeout' }, true), this.o.connectTimeoutMs || 10000);
          let c: Conn | undefined;
          try {
            c = t.open(this.url(token, true), {
              open: () => {
                if (g === this.gen) this.opened = true;
              },
              message: (text) => {
                if (g === this.gen) this.onFrame(text);
              },
              close: (info) => {
                if (g === this.gen) this.drop(info, false, probe);
              },
            });
          } catch (e) {
            // A URL the socket API rejects (malformed, ws:// from an https page) never gets better.
            return this.fail(wrap('transport', e, 'cannot open a socket'));
          }
          if (g === this.gen) this.conn = c;
        },
        (e) => {
          if (g === this.gen) this.drop({ code: 1006, reason: 'token function failed', error: wrap('token', e, 'the token function failed') });
        },
      );
  }

  /** The current connection ended (or is given up: `kill`). */
  private drop(info: CloseInfo, kill?: boolean, probeWith?: Transport) {
    const c = this.conn,
      opened = this.opened;
    this.gen++;
    this.conn = undefined;
    this.opened = this.welcomed = false;
    this.stopTimers();
    if (kill && c) {
      try {
        c.close(info.code, info.reason);
      } catch (e) {
        /* already gone */
      }
    }
    const lost = new SwitchboardError('connection-lost', `connection lost before the answer (${info.code}${info.reason ? ' ' + info.reason : ''})`);
    const p = this.pending;
    const o = this.out;
    this.pending = new Map();
    this.out = [];
    this.rooms.forEach((r) => r.dropped());
    p.forEach((r) => this.settle(r, lost));
    // Not sent (or refused): the app's wait for the next connection, ahead
    // of what was asked since; the client's own are made again after it.
    const keep = o.filter((r) => !r.own);
    o.forEach((r) => r.own && this.settle(r, lost));
    keep.forEach((r) => this.arm(r));
    this.queue = keep.concat(this.queue);
    if (info.fatal) return this.fail(info.fatal, info);
    const refused = this.refusal(info.status, info.body, info);
    if (refused) return;
    if (info.code === 4001 || /replaced/.test(info.reason || '')) {
      this.session = undefined; // the newer connection has the session now
      return this.fail(new SwitchboardError('replaced', 'another connection with this id replaced this one (4001)'), info);
    }
    if (!opened && info.status === undefined && probeWith && probeWith.probe) {
      // The transport cannot tell why the handshake failed: ask the server.
      const g = this.gen;
      probeWith.probe(this.url(this.lastToken, false).replace(/^ws/, 'http'), this.o.connectTimeoutMs || 10000).then(
        (status) => {
          if (g === this.gen && !this.refusal(status === 401 ? 401 : undefined, undefined, info)) this.retry(info);
        },
        () => g === this.gen && this.retry(info),
      );
      return;
    }
    this.retry(info);
  }
  private lastToken?: string;

  /** A refusal reconnecting cannot fix: closes the client. */
  private refusal(status: number | undefined, body: string | undefined, info: CloseInfo): boolean {
    if (status === 401) this.fail(new SwitchboardError('unauthorized', 'the server refused the token (401)' + (body ? ': ' + body : ''), { status }), info);
    else if (status === 400 || status === 404) this.fail(new SwitchboardError('refused', `the server refused the connection (${status})` + (body ? ': ' + body : ''), { status }), info);
    else return false;
    return true;
  }

  private retry(info: CloseInfo) {
    const b = this.o.backoff || {};
    const max = b.maxMs || 30000;
    const jitter = this.o.restartJitterMs === undefined ? 1000 : this.o.restartJitterMs;
    // 1012: this server is going away on purpose and the others (or its
    // next run) take the session at once; no backoff.
    const delay =
      info.code === 1012 && this.attempt === 0
        ? Math.random() * jitter
        : Math.min(max, (b.initialMs || 1000) * Math.pow(2, Math.min(this.attempt++, 20)) * (0.5 + Math.random()));
    const error = info.error !== undefined ? wrap('transport', info.error, 'transport error') : undefined;
    this.setState(this.session ? 'resuming' : 'connecting', { code: info.code, reason: info.reason, error });
    if (error) this.emit('error', error);
    const g = this.gen;
    this.tRetry = setTimeout(() => g === this.gen && !this.stopped && this.dial(), delay);
  }

  /** Closes the client for good with `err`. */
  private fail(err: SwitchboardError, info?: CloseInfo) {
    const c = this.conn;
    this.stopped = true;
    this.gen++;
    this.conn = undefined;
    this.opened = this.welcomed = false;
    this.stopTimers();
    if (c) {
      try {
        c.close(1000, 'bye');
      } catch (e) {
        /* already gone */
      }
    }
    const q = this.queue.concat(this.out);
    const p = this.pending;
    this.queue = [];
    this.out = [];
    this.pending = new Map();
    q.forEach((r) => this.settle(r, err));
    p.forEach((r) => this.settle(r, err));
    this.setState('closed', { code: info && info.code, reason: info && info.reason, error: err });
    if (err.code !== 'closed') this.emit('error', err);
    const d = this.ready;
    this.ready = undefined;
    if (d) d.reject(err);
  }

  private settle(r: Req, err: SwitchboardError | undefined, frame?: any) {
    clearTimeout(r.timer);
    if (err) r.reject(err);
    else r.resolve(frame);
  }

  /** Sends `r` when its turn comes under the rate limits (time waiting for
   *  it is not counted by the timeout). */
  private enqueue(r: Req) {
    clearTimeout(r.timer);
    this.out.push(r);
    this.pump();
  }

  /** Sends what the buckets allow, in order; queries may be overtaken by
   *  other frames while the query bucket is empty. */
  private pump() {
    clearTimeout(this.tPace);
    const now = Date.now();
    let next = Infinity;
    let qw = 0;
    for (let i = 0; i < this.out.length; ) {
      const r = this.out[i];
      const fw = this.fb.wait(now);
      if (fw) {
        next = fw;
        break;
      }
      if (r.at > now || (r.q && (qw = qw || this.qb.wait(now)))) {
        next = Math.min(next, r.at > now ? r.at - now : qw);
        i++;
        continue;
      }
      if (r.q) this.qb.take();
      this.fb.take();
      this.out.splice(i, 1);
      if (r.ref) {
        this.pending.set(r.ref, r);
        this.arm(r);
      } else {
        this.pinging = false;
        const g = this.gen;
        if (!this.tPong)
          this.tPong = setTimeout(() => g === this.gen && this.drop({ code: LOCAL, reason: 'no pong' }, true), this.o.pongTimeoutMs || 10000);
      }
      try {
        if (this.conn) this.conn.send(JSON.stringify(r.frame));
      } catch (e) {
        /* the close that follows settles it */
      }
    }
    if (next < Infinity) this.tPace = setTimeout(() => this.pump(), next);
  }

  /** Refused with `rate-limited`: sent again after the server's wait (and a
   *  jitter), before anything not sent yet; its bucket waits too. */
  private later(r: Req, ms: number) {
    clearTimeout(r.timer);
    r.n++;
    r.at = Date.now() + ms * (1 + Math.random() / 4) + 1;
    // A broadcast's own allowance says nothing about other frames.
    if (r.frame.type !== 'broadcast') (r.q ? this.qb : this.fb).hold(r.at);
    let i = 0;
    while (i < this.out.length && this.out[i].n) i++;
    this.out.splice(i, 0, r);
    this.pump();
  }

  private onFrame(text: string) {
    let m: any;
    try {
      m = JSON.parse(text);
    } catch (e) {
      return this.emit('error', new SwitchboardError('bad-frame', 'the server sent a frame that is not JSON'));
    }
    if (!m || typeof m !== 'object') return;
    clearTimeout(this.tPong); // anything heard proves the connection
    this.tPong = undefined;
    this.emit('frame', m);
    const t = m.type;
    const room = typeof m.room === 'string' ? this.rooms.get(m.room) : undefined;
    if (t === 'welcome') return this.onWelcome(m);
    if (t === 'room') return typeof m.room === 'string' && this.room(m.room).deliver(m);
    if (t === 'epoch') return room && typeof m.epoch === 'string' && room.restarted(m.epoch);
    if (t === 'joined' || t === 'left') {
      if (room) {
        if (t === 'left' && m.id === this.id) room.joined = false;
        room.emit(t, { room: m.room, id: m.id });
      }
      return;
    }
    if (t === 'broadcast') return this.emit('broadcast', { from: m.from, data: m.data });
    if (t === 'notice') return this.emit('notice', strip(m));
    if (t === 'notices-dropped') return this.emit('notices-dropped', { count: m.count });
    if (m.ref !== undefined) {
      const r = this.pending.get(m.ref);
      if (r) {
        this.pending.delete(m.ref);
        const ms = m.retry_after_ms;
        const max = this.o.maxRetries;
        if (t === 'error' && m.code === 'rate-limited' && typeof ms === 'number' && r.n < (typeof max === 'number' ? max : 5)) this.later(r, ms);
        else if (t === 'error') this.settle(r, serverError(m));
        else this.settle(r, undefined, m);
      }
    } else if (t === 'error') this.emit('error', serverError(m));
  }

  private onWelcome(m: any) {
    clearTimeout(this.tConnect);
    this.welcomed = true;
    this.attempt = 0;
    this.id = m.id;
    this.session = m.session;
    const ev: WelcomeEvent = { id: m.id, session: m.session, resumed: !!m.resumed };
    this.last = ev;
    this.tPing = setInterval(() => {
      if (this.pinging) return;
      this.pinging = true;
      this.enqueue({ ref: 0, frame: { type: 'ping' }, resolve: noop, reject: noop, timer: 0, q: false, own: true, n: 0, at: 0 });
    }, this.o.pingIntervalMs || 25000);
    // Re-join every room first (with `since`: recovers what a fresh start
    // missed, and fills any gap a resume left), then what the app queued.
    this.rooms.forEach((r) => r.joined && r.rejoin());
    const q = this.queue;
    this.queue = [];
    q.forEach((r) => this.enqueue(r));
    this.setState('open');
    this.emit('welcome', ev);
    const d = this.ready;
    this.ready = undefined;
    if (d) d.resolve(ev);
  }
}

/** A room: join it, send to it, read its history; its events are its frames. */
export class Room extends Emitter<RoomEvents> {
  /** The room's name. */
  readonly name: string;
  /** Whether this client is (or, across a drop, will be re-joined) in the room. */
  joined = false;
  /** The room history's epoch, from the last join ack. */
  epoch?: string;
  /** The offset of the last message delivered (or of the join ack, if none came after it). */
  offset?: number;
  private sb: Switchboard;
  private own = 0; // own messages sent whose offsets have not been seen
  private filling = false; // reading a gap from history: frames wait in buf
  private buf: any[] = [];
  private top?: number; // a join ack's offset seen while filling

  /** Rooms come from `sb.room(name)`. */
  constructor(sb: Switchboard, name: string) {
    super();
    this.sb = sb;
    this.name = name;
  }

  /** Joins (idempotent). Resolves with the ack: `{epoch, offset, recovered?}`. */
  join(): Promise<JoinAck> {
    return this.enter();
  }

  /** @internal `own`: the client's re-join after a reconnect. */
  enter(own?: boolean): Promise<JoinAck> {
    const since = this.epoch !== undefined && this.offset !== undefined ? { epoch: this.epoch, offset: this.offset } : undefined;
    return this.sb.ask({ type: 'join', room: this.name, since }, own).then((a) => {
      this.joined = true;
      if (typeof a.epoch === 'string' && typeof a.offset === 'number') {
        if (a.recovered === false || a.epoch !== this.epoch || this.offset === undefined) {
          this.epoch = a.epoch;
          this.offset = a.offset;
          this.own = 0;
        } else if (this.filling) this.top = Math.max(this.top || 0, a.offset);
        else if (a.offset > this.offset) this.gap(a.offset + 1);
      }
      const ack: JoinAck = { epoch: a.epoch, offset: a.offset };
      if (a.recovered !== undefined) ack.recovered = a.recovered;
      if (since && a.recovered === false) this.emit('recovery-failed', { room: this.name, epoch: a.epoch, offset: a.offset, since });
      return ack;
    });
  }

  /** @internal Re-join after a reconnect. */
  rejoin(): void {
    this.enter(true).catch((e: SwitchboardError) => {
      if (!e.frame) return; // connection lost or timed out: the next welcome tries again
      this.joined = false;
      this.sb.emit('error', e);
    });
  }

  /** Leaves the room; it is no longer re-joined after a reconnect. */
  leave(): Promise<void> {
    return this.sb.request({ type: 'leave', room: this.name }).then(
      () => this.forget(),
      (e: SwitchboardError) => {
        if (e.code === 'not-in-room') this.forget();
        throw e;
      },
    );
  }

  private forget() {
    this.joined = false;
    this.epoch = this.offset = undefined;
  }

  /** Sends `data` to the room's other members. */
  send(data: unknown): Promise<void> {
    this.own++; // takes an offset this client will not see
    return this.sb.request({ type: 'room', room: this.name, data: def(data) }).then(noop, (e: SwitchboardError) => {
      if (e.frame && this.own > 0) this.own--; // refused: it took none
      throw e;
    });
  }

  /** The room's kept messages, oldest first: the newest `limit` (at most 100), those before offset `before`. */
  history(opts?: { limit?: number; before?: number }): Promise<HistoryResult> {
    const o = opts || {};
    return this.sb.request({ type: 'history', room: this.name, limit: o.limit, before: o.before }).then((f) => ({ room: f.room, epoch: f.epoch, messages: f.messages }));
  }

  /** Who is in the room: at most 1 000 ids, and the exact `count`. */
  members(): Promise<MembersResult> {
    return this.sb.request({ type: 'members', room: this.name }).then((f) => ({ ids: f.ids, count: f.count }));
  }

  /** @internal A room frame: delivered once, in offset order, with no gap. */
  deliver(m: any): void {
    if (this.filling) {
      this.buf.push(m);
      return;
    }
    const off = m.offset;
    if (typeof off === 'number' && this.offset !== undefined) {
      if (off <= this.offset) return; // seen already (replayed after a resume)
      if (off > this.offset + 1) return this.gap(off, m);
    }
    this.accept(m);
  }

  /** @internal The room's history started again under `epoch` (a cluster's
   *  Redis lost its data): offsets count from 1 in it. What came after the
   *  last message delivered in the old epoch is gone: `recovery-failed`. */
  restarted(epoch: string): void {
    if (epoch === this.epoch) return;
    const since = this.epoch !== undefined && this.offset !== undefined ? { epoch: this.epoch, offset: this.offset } : undefined;
    this.epoch = epoch;
    this.offset = 0;
    this.own = 0;
    // A gap being read from the old epoch's history: abandoned (its
    // answer is ignored, the epoch having changed).
    this.filling = false;
    this.buf = [];
    this.top = undefined;
    if (since) this.emit('recovery-failed', { room: this.name, epoch, offset: 0, since });
  }

  /** @internal The connection dropped: what this client sent is now unknown. */
  dropped(): void {
    this.own = 0;
  }

  private accept(m: any) {
    const off = m.offset;
    if (typeof off === 'number') this.offset = off;
    // Your own messages never come back live; a recovering join or a gap
    // fill brings them with the rest: skip them there too.
    if (m.from === this.sb.id) {
      if (this.own > 0) this.own--;
      return;
    }
    const msg: RoomMessage = { room: m.room, from: m.from, data: m.data };
    if (typeof off === 'number') msg.offset = off;
    this.emit('message', msg);
  }

  /** Offsets before `upto` were not delivered: this client's own messages
   *  (which never come back), or frames lost with a dropped socket (the
   *  server cannot hold what it had already written to it). The latter are
   *  read from the room's history, and delivered in order before `first`. */
  private gap(upto: number, first?: any) {
    const since = { epoch: this.epoch!, offset: this.offset! };
    const missing = upto - since.offset - 1;
    if (missing <= this.own) {
      this.own -= missing;
      this.offset = upto - 1;
      if (first) this.accept(first);
      return;
    }
    this.filling = true;
    if (first) this.buf.push(first);
    const failed = () => this.emit('recovery-failed', { room: this.name, epoch: since.epoch, offset: upto - 1, since });
    this.sb.ask({ type: 'history', room: this.name, limit: Math.min(100, missing), before: upto }, true).then(
      (h) => {
        if (this.epoch !== since.epoch) return; // the room started again meanwhile
        this.filling = false;
        const got = h.epoch === since.epoch ? (h.messages || []).filter((x: any) => x.offset > since.offset && x.offset < upto) : [];
        if (got.length !== missing || this.offset !== since.offset) failed();
        got.forEach((x: any) => this.accept(x));
        this.offset = Math.max(this.offset!, upto - 1);
        this.flush();
      },
      (e: SwitchboardError) => {
        if (this.epoch !== since.epoch) return;
        this.filling = false;
        if (!e.frame && e.code !== 'timeout') {
          // The connection went: the re-join with `since` after the next
          // welcome starts again from the last message delivered.
          this.buf = [];
          this.top = undefined;
          return;
        }
        failed();
        this.offset = Math.max(this.offset!, upto - 1);
        this.flush();
      },
    );
  }

  private flush() {
    const b = this.buf;
    this.buf = [];
    b.forEach((m) => this.deliver(m));
    const top = this.top;
    if (!this.filling && top !== undefined) {
      this.top = undefined;
      if (top > this.offset!) this.gap(top + 1);
    }
  }
}

function def(data: unknown) {
  return data === undefined ? null : data;
}
function strip(f: any) {
  const o: any = {};
  for (const k in f) if (k !== 'type' && k !== 'ref') o[k] = f[k];
  return o;
}
function serverError(m: any) {
  return new SwitchboardError(String(m.code), String(m.message), { retryAfterMs: m.retry_after_ms, frame: m });
}
function wrap(code: string, e: unknown, what: string) {
  return e instanceof SwitchboardError ? e : new SwitchboardError(code, what + (e && (e as any).message ? ': ' + (e as any).message : ''), { cause: e });
}
