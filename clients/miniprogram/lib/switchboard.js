/*! switchboard-client 0.1.0 (WeChat mini-program: module.exports = { Switchboard, SwitchboardError, Room }) | generated from clients/js by `npm run build`: do not edit */
"use strict";
var __defProp = Object.defineProperty;
var __defProps = Object.defineProperties;
var __getOwnPropDesc = Object.getOwnPropertyDescriptor;
var __getOwnPropDescs = Object.getOwnPropertyDescriptors;
var __getOwnPropNames = Object.getOwnPropertyNames;
var __getOwnPropSymbols = Object.getOwnPropertySymbols;
var __hasOwnProp = Object.prototype.hasOwnProperty;
var __propIsEnum = Object.prototype.propertyIsEnumerable;
var __defNormalProp = (obj, key, value) => key in obj ? __defProp(obj, key, { enumerable: true, configurable: true, writable: true, value }) : obj[key] = value;
var __spreadValues = (a, b) => {
  for (var prop in b || (b = {}))
    if (__hasOwnProp.call(b, prop))
      __defNormalProp(a, prop, b[prop]);
  if (__getOwnPropSymbols)
    for (var prop of __getOwnPropSymbols(b)) {
      if (__propIsEnum.call(b, prop))
        __defNormalProp(a, prop, b[prop]);
    }
  return a;
};
var __spreadProps = (a, b) => __defProps(a, __getOwnPropDescs(b));
var __export = (target, all) => {
  for (var name in all)
    __defProp(target, name, { get: all[name], enumerable: true });
};
var __copyProps = (to, from, except, desc) => {
  if (from && typeof from === "object" || typeof from === "function") {
    for (let key of __getOwnPropNames(from))
      if (!__hasOwnProp.call(to, key) && key !== except)
        __defProp(to, key, { get: () => from[key], enumerable: !(desc = __getOwnPropDesc(from, key)) || desc.enumerable });
  }
  return to;
};
var __toCommonJS = (mod) => __copyProps(__defProp({}, "__esModule", { value: true }), mod);

// src/wx.ts
var wx_exports = {};
__export(wx_exports, {
  Room: () => Room,
  Switchboard: () => Switchboard,
  SwitchboardError: () => SwitchboardError
});
module.exports = __toCommonJS(wx_exports);

// src/emitter.ts
var Emitter = class {
  constructor() {
    this._l = {};
  }
  /** Calls `fn` for every `event` from now on. */
  on(event, fn) {
    (this._l[event] || (this._l[event] = [])).push(fn);
    return this;
  }
  /** Removes `fn` (added with `on`) from `event`. */
  off(event, fn) {
    const a = this._l[event];
    const i = a ? a.indexOf(fn) : -1;
    if (i >= 0) a.splice(i, 1);
    return this;
  }
  /** @internal */
  emit(event, e) {
    const a = this._l[event];
    if (!a) return;
    for (const fn of a.slice()) {
      try {
        fn.call(this, e);
      } catch (err) {
        setTimeout(() => {
          throw err;
        }, 0);
      }
    }
  }
};

// src/core.ts
var SwitchboardError = class extends Error {
  constructor(code, message, extra) {
    super(message);
    this.name = "SwitchboardError";
    this.code = code;
    if (extra) {
      for (const k in extra) if (extra[k] !== void 0) this[k] = extra[k];
    }
  }
};
var transports = {};
var G = typeof globalThis !== "undefined" ? globalThis : typeof self !== "undefined" ? self : typeof window !== "undefined" ? window : {};
function pickTransport(name) {
  if (name === "auto") {
    if (typeof wx !== "undefined" && wx && wx.connectSocket && transports.wx) name = "wx";
    else if (typeof process !== "undefined" && process && process.versions && process.versions.node && transports.node) name = "node";
    else name = "browser";
  }
  const f = transports[name];
  return f && f();
}
var Bucket = class {
  constructor(rate, burst) {
    this.rate = rate;
    this.burst = burst;
    this.t = 0;
    this.until = 0;
    this.n = burst;
  }
  /** How long until a token is there (0: now; then `take` it). */
  wait(now) {
    if (now < this.until) return this.until - now;
    if (!this.rate) return 0;
    this.n = Math.min(this.burst, this.n + (now - this.t) * this.rate / 1e3);
    this.t = now;
    return this.n >= 1 ? 0 : Math.ceil((1 - this.n) * 1e3 / this.rate);
  }
  take() {
    this.n--;
  }
  /** Nothing before `until`; then one token, and the rate from there. */
  hold(until) {
    this.until = this.t = Math.max(this.until, until);
    this.n = 1;
  }
};
var QUERY = /^(members|online|history)$/;
var MARGIN = 0.9;
function bucket(rate, burst, r, b) {
  const n = (v, d) => typeof v === "number" && v >= 0 ? v : d;
  return new Bucket(n(rate, r) * MARGIN, Math.max(1, Math.floor(n(burst, b) * MARGIN)));
}
function deferred() {
  const d = {};
  d.promise = new Promise((res, rej) => {
    d.resolve = res;
    d.reject = rej;
  });
  d.promise.catch(noop);
  return d;
}
function noop() {
}
var enc = encodeURIComponent;
var LOCAL = 4e3;
var Switchboard = class extends Emitter {
  constructor(options) {
    super();
    /** `connecting`, `open`, `resuming` or `closed` (before `connect()` and after `close()`). */
    this.state = "closed";
    this.gen = 0;
    // the current attempt; callbacks of older attempts are ignored
    this.opened = false;
    // the current socket reached open
    this.welcomed = false;
    // the current socket got its welcome
    this.stopped = true;
    this.attempt = 0;
    this.nextRef = 1;
    this.pending = /* @__PURE__ */ new Map();
    this.queue = [];
    // waiting for a connection (a welcome)
    this.out = [];
    this.pinging = false;
    // a ping waits in `out`
    this.rooms = /* @__PURE__ */ new Map();
    this.o = options || {};
    this.id = this.o.id;
    const l = this.o.limits || {};
    this.fb = bucket(l.messagesPerSec, l.messagesBurst, 50, 100);
    this.qb = bucket(l.queriesPerSec, l.queriesBurst, 5, 20);
    if (!this.o.id && !this.o.token) throw new SwitchboardError("bad-options", "Switchboard: give an `id`, a `token`, or both");
  }
  /** Starts connecting (or, while waiting to reconnect, tries at once). Resolves at the first welcome; rejects if the client closes first (`close()`, 4001, 401). */
  connect() {
    if (this.state === "open" && this.last) return Promise.resolve(this.last);
    if (!this.ready) this.ready = deferred();
    const p = this.ready.promise;
    if (this.stopped) {
      this.stopped = false;
      this.attempt = 0;
      this.dial();
    } else if (!this.conn) this.dial();
    return p;
  }
  /** Closes the connection for good (code 1000: the server drops the session): state `closed`, no reconnect, waiting requests rejected with `closed`. Joined rooms are re-joined by a later `connect()`. */
  close() {
    if (this.stopped && !this.conn) return;
    this.session = void 0;
    this.fail(new SwitchboardError("closed", "closed by the client"), { code: 1e3, reason: "closed by the client" });
  }
  /** The handle of a room (the same object for the same name). */
  room(name) {
    let r = this.rooms.get(name);
    if (!r) this.rooms.set(name, r = new Room(this, name));
    return r;
  }
  /** A private message. With `{store: true}` it is kept for an offline target. Resolves with the ack's `held` / `stored`. */
  notice(to, data, opts) {
    return this.request({ type: "notice", to, data: def(data), store: opts && opts.store ? true : void 0 }).then(strip);
  }
  /** Sends `data` to every other connection online. */
  broadcast(data) {
    return this.request({ type: "broadcast", data: def(data) }).then(noop);
  }
  /** Which of these ids (at most 100) are online, in the order asked. */
  online(ids) {
    return this.request({ type: "online", ids }).then((f) => f.ids);
  }
  /** Sends any request (a `type` and its fields); resolves with its answer frame (`ack` or the answer), rejects with its `error`. */
  request(frame) {
    return this.ask(frame);
  }
  /** @internal `own`: a request of the client's own (see `Req`). */
  ask(frame, own) {
    return new Promise((resolve, reject) => {
      if (this.stopped) return reject(new SwitchboardError("closed", "the client is closed: call connect() first"));
      const ref = this.nextRef++;
      const r = { ref, frame: __spreadProps(__spreadValues({}, frame), { ref }), resolve, reject, timer: 0, q: QUERY.test(frame.type), own, n: 0, at: 0 };
      if (this.welcomed) this.enqueue(r);
      else if (this.queue.length >= (this.o.maxQueue || 100)) reject(new SwitchboardError("queue-full", "too many requests waiting for the connection"));
      else {
        this.queue.push(r);
        this.arm(r);
      }
    });
  }
  // -------------------------------------------------------------------------
  /** (Re)starts a request's timeout: it waits for a connection, or for its answer. */
  arm(r) {
    clearTimeout(r.timer);
    const ms = this.o.requestTimeoutMs || 1e4;
    r.timer = setTimeout(() => {
      const i = this.queue.indexOf(r);
      if (i >= 0) this.queue.splice(i, 1);
      this.pending.delete(r.ref);
      r.reject(new SwitchboardError("timeout", `no answer to \`${r.frame.type}\` within ${ms} ms`));
    }, ms);
  }
  url(token, resume) {
    let base = this.o.url;
    if (!base && G.location && G.location.host) base = (G.location.protocol === "https:" ? "wss://" : "ws://") + G.location.host;
    let u = String(base || "").replace(/\/+$/, "") + "/ws" + (this.o.id ? "/" + enc(this.o.id) : "");
    const q = [];
    if (token) q.push("token=" + enc(token));
    if (resume && this.session) q.push("resume=" + enc(this.session));
    return q.length ? u + "?" + q.join("&") : u;
  }
  setState(state, info) {
    if (state === this.state && !info) return;
    this.state = state;
    const ev = __spreadValues({ state }, info);
    this.emit("state", ev);
    this.emit(state, ev);
  }
  stopTimers() {
    clearTimeout(this.tRetry);
    clearInterval(this.tPing);
    clearTimeout(this.tPong);
    clearTimeout(this.tConnect);
    clearTimeout(this.tPace);
    this.tPong = void 0;
    this.pinging = false;
  }
  /** Starts one connection attempt. */
  dial() {
    const g = ++this.gen;
    this.stopTimers();
    this.opened = this.welcomed = false;
    this.setState(this.session ? "resuming" : "connecting");
    const t = pickTransport(this.o.transport || "auto");
    if (!t) return this.fail(new SwitchboardError("no-transport", `no WebSocket for transport \`${this.o.transport || "auto"}\` here`));
    const tok = this.o.token;
    Promise.resolve().then(() => typeof tok === "function" ? tok() : tok).then(
      (token) => {
        if (g !== this.gen) return;
        this.lastToken = token;
        const probe = t.probe && !t.knowsStatus ? t : void 0;
        this.tConnect = setTimeout(() => g === this.gen && this.drop({ code: LOCAL, reason: "connect timeout" }, true), this.o.connectTimeoutMs || 1e4);
        let c;
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
            }
          });
        } catch (e) {
          return this.fail(wrap("transport", e, "cannot open a socket"));
        }
        if (g === this.gen) this.conn = c;
      },
      (e) => {
        if (g === this.gen) this.drop({ code: 1006, reason: "token function failed", error: wrap("token", e, "the token function failed") });
      }
    );
  }
  /** The current connection ended (or is given up: `kill`). */
  drop(info, kill, probeWith) {
    const c = this.conn, opened = this.opened;
    this.gen++;
    this.conn = void 0;
    this.opened = this.welcomed = false;
    this.stopTimers();
    if (kill && c) {
      try {
        c.close(info.code, info.reason);
      } catch (e) {
      }
    }
    const lost = new SwitchboardError("connection-lost", `connection lost before the answer (${info.code}${info.reason ? " " + info.reason : ""})`);
    const p = this.pending;
    const o = this.out;
    this.pending = /* @__PURE__ */ new Map();
    this.out = [];
    this.rooms.forEach((r) => r.dropped());
    p.forEach((r) => this.settle(r, lost));
    const keep = o.filter((r) => !r.own);
    o.forEach((r) => r.own && this.settle(r, lost));
    keep.forEach((r) => this.arm(r));
    this.queue = keep.concat(this.queue);
    if (info.fatal) return this.fail(info.fatal, info);
    const refused = this.refusal(info.status, info.body, info);
    if (refused) return;
    if (info.code === 4001 || /replaced/.test(info.reason || "")) {
      this.session = void 0;
      return this.fail(new SwitchboardError("replaced", "another connection with this id replaced this one (4001)"), info);
    }
    if (!opened && info.status === void 0 && probeWith && probeWith.probe) {
      const g = this.gen;
      probeWith.probe(this.url(this.lastToken, false).replace(/^ws/, "http"), this.o.connectTimeoutMs || 1e4).then(
        (status) => {
          if (g === this.gen && !this.refusal(status === 401 ? 401 : void 0, void 0, info)) this.retry(info);
        },
        () => g === this.gen && this.retry(info)
      );
      return;
    }
    this.retry(info);
  }
  /** A refusal reconnecting cannot fix: closes the client. */
  refusal(status, body, info) {
    if (status === 401) this.fail(new SwitchboardError("unauthorized", "the server refused the token (401)" + (body ? ": " + body : ""), { status }), info);
    else if (status === 400 || status === 404) this.fail(new SwitchboardError("refused", `the server refused the connection (${status})` + (body ? ": " + body : ""), { status }), info);
    else return false;
    return true;
  }
  retry(info) {
    const b = this.o.backoff || {};
    const max = b.maxMs || 3e4;
    const jitter = this.o.restartJitterMs === void 0 ? 1e3 : this.o.restartJitterMs;
    const delay = info.code === 1012 && this.attempt === 0 ? Math.random() * jitter : Math.min(max, (b.initialMs || 1e3) * Math.pow(2, Math.min(this.attempt++, 20)) * (0.5 + Math.random()));
    const error = info.error !== void 0 ? wrap("transport", info.error, "transport error") : void 0;
    this.setState(this.session ? "resuming" : "connecting", { code: info.code, reason: info.reason, error });
    if (error) this.emit("error", error);
    const g = this.gen;
    this.tRetry = setTimeout(() => g === this.gen && !this.stopped && this.dial(), delay);
  }
  /** Closes the client for good with `err`. */
  fail(err, info) {
    const c = this.conn;
    this.stopped = true;
    this.gen++;
    this.conn = void 0;
    this.opened = this.welcomed = false;
    this.stopTimers();
    if (c) {
      try {
        c.close(1e3, "bye");
      } catch (e) {
      }
    }
    const q = this.queue.concat(this.out);
    const p = this.pending;
    this.queue = [];
    this.out = [];
    this.pending = /* @__PURE__ */ new Map();
    q.forEach((r) => this.settle(r, err));
    p.forEach((r) => this.settle(r, err));
    this.setState("closed", { code: info && info.code, reason: info && info.reason, error: err });
    if (err.code !== "closed") this.emit("error", err);
    const d = this.ready;
    this.ready = void 0;
    if (d) d.reject(err);
  }
  settle(r, err, frame) {
    clearTimeout(r.timer);
    if (err) r.reject(err);
    else r.resolve(frame);
  }
  /** Sends `r` when its turn comes under the rate limits (time waiting for
   *  it is not counted by the timeout). */
  enqueue(r) {
    clearTimeout(r.timer);
    this.out.push(r);
    this.pump();
  }
  /** Sends what the buckets allow, in order; queries may be overtaken by
   *  other frames while the query bucket is empty. */
  pump() {
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
      if (r.at > now || r.q && (qw = qw || this.qb.wait(now))) {
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
          this.tPong = setTimeout(() => g === this.gen && this.drop({ code: LOCAL, reason: "no pong" }, true), this.o.pongTimeoutMs || 1e4);
      }
      try {
        if (this.conn) this.conn.send(JSON.stringify(r.frame));
      } catch (e) {
      }
    }
    if (next < Infinity) this.tPace = setTimeout(() => this.pump(), next);
  }
  /** Refused with `rate-limited`: sent again after the server's wait (and a
   *  jitter), before anything not sent yet; its bucket waits too. */
  later(r, ms) {
    clearTimeout(r.timer);
    r.n++;
    r.at = Date.now() + ms * (1 + Math.random() / 4) + 1;
    if (r.frame.type !== "broadcast") (r.q ? this.qb : this.fb).hold(r.at);
    let i = 0;
    while (i < this.out.length && this.out[i].n) i++;
    this.out.splice(i, 0, r);
    this.pump();
  }
  onFrame(text) {
    let m;
    try {
      m = JSON.parse(text);
    } catch (e) {
      return this.emit("error", new SwitchboardError("bad-frame", "the server sent a frame that is not JSON"));
    }
    if (!m || typeof m !== "object") return;
    clearTimeout(this.tPong);
    this.tPong = void 0;
    this.emit("frame", m);
    const t = m.type;
    const room = typeof m.room === "string" ? this.rooms.get(m.room) : void 0;
    if (t === "welcome") return this.onWelcome(m);
    if (t === "room") return typeof m.room === "string" && this.room(m.room).deliver(m);
    if (t === "epoch") return room && typeof m.epoch === "string" && room.restarted(m.epoch);
    if (t === "joined" || t === "left") {
      if (room) {
        if (t === "left" && m.id === this.id) room.joined = false;
        room.emit(t, { room: m.room, id: m.id });
      }
      return;
    }
    if (t === "broadcast") return this.emit("broadcast", { from: m.from, data: m.data });
    if (t === "notice") return this.emit("notice", strip(m));
    if (t === "notices-dropped") return this.emit("notices-dropped", { count: m.count });
    if (m.ref !== void 0) {
      const r = this.pending.get(m.ref);
      if (r) {
        this.pending.delete(m.ref);
        const ms = m.retry_after_ms;
        const max = this.o.maxRetries;
        if (t === "error" && m.code === "rate-limited" && typeof ms === "number" && r.n < (typeof max === "number" ? max : 5)) this.later(r, ms);
        else if (t === "error") this.settle(r, serverError(m));
        else this.settle(r, void 0, m);
      }
    } else if (t === "error") this.emit("error", serverError(m));
  }
  onWelcome(m) {
    clearTimeout(this.tConnect);
    this.welcomed = true;
    this.attempt = 0;
    this.id = m.id;
    this.session = m.session;
    const ev = { id: m.id, session: m.session, resumed: !!m.resumed };
    this.last = ev;
    this.tPing = setInterval(() => {
      if (this.pinging) return;
      this.pinging = true;
      this.enqueue({ ref: 0, frame: { type: "ping" }, resolve: noop, reject: noop, timer: 0, q: false, own: true, n: 0, at: 0 });
    }, this.o.pingIntervalMs || 25e3);
    this.rooms.forEach((r) => r.joined && r.rejoin());
    const q = this.queue;
    this.queue = [];
    q.forEach((r) => this.enqueue(r));
    this.setState("open");
    this.emit("welcome", ev);
    const d = this.ready;
    this.ready = void 0;
    if (d) d.resolve(ev);
  }
};
var Room = class extends Emitter {
  // a join ack's offset seen while filling
  /** Rooms come from `sb.room(name)`. */
  constructor(sb, name) {
    super();
    /** Whether this client is (or, across a drop, will be re-joined) in the room. */
    this.joined = false;
    this.own = 0;
    // own messages sent whose offsets have not been seen
    this.filling = false;
    // reading a gap from history: frames wait in buf
    this.buf = [];
    this.sb = sb;
    this.name = name;
  }
  /** Joins (idempotent). Resolves with the ack: `{epoch, offset, recovered?}`. */
  join() {
    return this.enter();
  }
  /** @internal `own`: the client's re-join after a reconnect. */
  enter(own) {
    const since = this.epoch !== void 0 && this.offset !== void 0 ? { epoch: this.epoch, offset: this.offset } : void 0;
    return this.sb.ask({ type: "join", room: this.name, since }, own).then((a) => {
      this.joined = true;
      if (typeof a.epoch === "string" && typeof a.offset === "number") {
        if (a.recovered === false || a.epoch !== this.epoch || this.offset === void 0) {
          this.epoch = a.epoch;
          this.offset = a.offset;
          this.own = 0;
        } else if (this.filling) this.top = Math.max(this.top || 0, a.offset);
        else if (a.offset > this.offset) this.gap(a.offset + 1);
      }
      const ack = { epoch: a.epoch, offset: a.offset };
      if (a.recovered !== void 0) ack.recovered = a.recovered;
      if (since && a.recovered === false) this.emit("recovery-failed", { room: this.name, epoch: a.epoch, offset: a.offset, since });
      return ack;
    });
  }
  /** @internal Re-join after a reconnect. */
  rejoin() {
    this.enter(true).catch((e) => {
      if (!e.frame) return;
      this.joined = false;
      this.sb.emit("error", e);
    });
  }
  /** Leaves the room; it is no longer re-joined after a reconnect. */
  leave() {
    return this.sb.request({ type: "leave", room: this.name }).then(
      () => this.forget(),
      (e) => {
        if (e.code === "not-in-room") this.forget();
        throw e;
      }
    );
  }
  forget() {
    this.joined = false;
    this.epoch = this.offset = void 0;
  }
  /** Sends `data` to the room's other members. */
  send(data) {
    this.own++;
    return this.sb.request({ type: "room", room: this.name, data: def(data) }).then(noop, (e) => {
      if (e.frame && this.own > 0) this.own--;
      throw e;
    });
  }
  /** The room's kept messages, oldest first: the newest `limit` (at most 100), those before offset `before`. */
  history(opts) {
    const o = opts || {};
    return this.sb.request({ type: "history", room: this.name, limit: o.limit, before: o.before }).then((f) => ({ room: f.room, epoch: f.epoch, messages: f.messages }));
  }
  /** Who is in the room: at most 1 000 ids, and the exact `count`. */
  members() {
    return this.sb.request({ type: "members", room: this.name }).then((f) => ({ ids: f.ids, count: f.count }));
  }
  /** @internal A room frame: delivered once, in offset order, with no gap. */
  deliver(m) {
    if (this.filling) {
      this.buf.push(m);
      return;
    }
    const off = m.offset;
    if (typeof off === "number" && this.offset !== void 0) {
      if (off <= this.offset) return;
      if (off > this.offset + 1) return this.gap(off, m);
    }
    this.accept(m);
  }
  /** @internal The room's history started again under `epoch` (a cluster's
   *  Redis lost its data): offsets count from 1 in it. What came after the
   *  last message delivered in the old epoch is gone: `recovery-failed`. */
  restarted(epoch) {
    if (epoch === this.epoch) return;
    const since = this.epoch !== void 0 && this.offset !== void 0 ? { epoch: this.epoch, offset: this.offset } : void 0;
    this.epoch = epoch;
    this.offset = 0;
    this.own = 0;
    this.filling = false;
    this.buf = [];
    this.top = void 0;
    if (since) this.emit("recovery-failed", { room: this.name, epoch, offset: 0, since });
  }
  /** @internal The connection dropped: what this client sent is now unknown. */
  dropped() {
    this.own = 0;
  }
  accept(m) {
    const off = m.offset;
    if (typeof off === "number") this.offset = off;
    if (m.from === this.sb.id) {
      if (this.own > 0) this.own--;
      return;
    }
    const msg = { room: m.room, from: m.from, data: m.data };
    if (typeof off === "number") msg.offset = off;
    this.emit("message", msg);
  }
  /** Offsets before `upto` were not delivered: this client's own messages
   *  (which never come back), or frames lost with a dropped socket (the
   *  server cannot hold what it had already written to it). The latter are
   *  read from the room's history, and delivered in order before `first`. */
  gap(upto, first) {
    const since = { epoch: this.epoch, offset: this.offset };
    const missing = upto - since.offset - 1;
    if (missing <= this.own) {
      this.own -= missing;
      this.offset = upto - 1;
      if (first) this.accept(first);
      return;
    }
    this.filling = true;
    if (first) this.buf.push(first);
    const failed = () => this.emit("recovery-failed", { room: this.name, epoch: since.epoch, offset: upto - 1, since });
    this.sb.ask({ type: "history", room: this.name, limit: Math.min(100, missing), before: upto }, true).then(
      (h) => {
        if (this.epoch !== since.epoch) return;
        this.filling = false;
        const got = h.epoch === since.epoch ? (h.messages || []).filter((x) => x.offset > since.offset && x.offset < upto) : [];
        if (got.length !== missing || this.offset !== since.offset) failed();
        got.forEach((x) => this.accept(x));
        this.offset = Math.max(this.offset, upto - 1);
        this.flush();
      },
      (e) => {
        if (this.epoch !== since.epoch) return;
        this.filling = false;
        if (!e.frame && e.code !== "timeout") {
          this.buf = [];
          this.top = void 0;
          return;
        }
        failed();
        this.offset = Math.max(this.offset, upto - 1);
        this.flush();
      }
    );
  }
  flush() {
    const b = this.buf;
    this.buf = [];
    b.forEach((m) => this.deliver(m));
    const top = this.top;
    if (!this.filling && top !== void 0) {
      this.top = void 0;
      if (top > this.offset) this.gap(top + 1);
    }
  }
};
function def(data) {
  return data === void 0 ? null : data;
}
function strip(f) {
  const o = {};
  for (const k in f) if (k !== "type" && k !== "ref") o[k] = f[k];
  return o;
}
function serverError(m) {
  return new SwitchboardError(String(m.code), String(m.message), { retryAfterMs: m.retry_after_ms, frame: m });
}
function wrap(code, e, what) {
  return e instanceof SwitchboardError ? e : new SwitchboardError(code, what + (e && e.message ? ": " + e.message : ""), { cause: e });
}

// src/transport-wx.ts
function wxTransport(w) {
  return {
    open(url, ev) {
      let done = false;
      const end = (info) => {
        if (!done) {
          done = true;
          ev.close(info);
        }
      };
      const failed = (e) => end({ code: 1006, reason: "", error: new Error(e && e.errMsg || "socket error") });
      const task = w.connectSocket({ url, fail: failed });
      task.onOpen(() => ev.open());
      task.onMessage((r) => {
        if (r && typeof r.data === "string") ev.message(r.data);
      });
      task.onError(failed);
      task.onClose((r) => end({ code: r && r.code || 1006, reason: r && r.reason || "" }));
      return {
        send: (t) => task.send({ data: t }),
        close: (code, reason) => {
          done = true;
          task.close({ code, reason });
        }
      };
    },
    probe: (url, ms) => new Promise((resolve) => {
      try {
        w.request({ url, method: "GET", timeout: ms, success: (r) => resolve(r.statusCode), fail: () => resolve(void 0) });
      } catch (e) {
        resolve(void 0);
      }
    })
  };
}
function wechat() {
  return typeof wx !== "undefined" && wx && wx.connectSocket ? wxTransport(wx) : void 0;
}

// src/wx.ts
transports.wx = wechat;
