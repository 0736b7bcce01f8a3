// The WeChat runtime does not run here. This harness runs the sample's own
// files (app.js, pages/chat/chat.js, utils/, config.js and the committed wx
// build lib/switchboard.js) under node with a fake global `wx`:
//
// - sockets and plain requests: clients/js/test/wx-shim.mjs, which implements
//   the documented wx.connectSocket / SocketTask / wx.request over `ws`;
// - wx.request with `data` (the login POST, which the shim does not send a
//   body for): a small stand-in that sends it as JSON and parses a JSON answer,
//   as wx.request does by default (dataType 'json');
// - wx.login: hands out one-time codes that the stand-in token backend
//   below knows (what code2Session does for a real backend);
// - App(), Page(), getApp(), wx.navigateTo, and a setData that records every
//   state the page was in.
import http from 'node:http';
import { createRequire } from 'node:module';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createWx } from '../../js/test/wx-shim.mjs';
import { mintToken } from '../../js/test/helpers.mjs';

const here = dirname(fileURLToPath(import.meta.url));
export const SAMPLE = resolve(here, '..');
const require = createRequire(import.meta.url);

// One shim for the whole test file; counts are read as differences.
const shim = createWx();
export const stats = shim.stats;
/** Sends through a SocketTask while its socket was not open (must stay 0). */
export const early = { sends: 0 };
/** wx.login -> the user it was called for (the "WeChat server" side of code2Session). */
const codes = new Map();
let nextCode = 1;

function jsonRequest({ url, method = 'GET', data, header, timeout = 60000, success, fail, complete }) {
  const body = JSON.stringify(data);
  const req = http.request(url, { method, headers: { 'content-type': 'application/json', ...header }, timeout }, (res) => {
    let text = '';
    res.setEncoding('utf8');
    res.on('data', (c) => (text += c));
    res.on('end', () => {
      let parsed = text;
      try {
        parsed = JSON.parse(text);
      } catch {
        /* wx.request leaves a body that is not JSON as a string */
      }
      if (success) success({ statusCode: res.statusCode, data: parsed, header: res.headers, errMsg: 'request:ok' });
      if (complete) complete({});
    });
  });
  req.on('timeout', () => req.destroy(new Error('timeout')));
  req.on('error', (e) => {
    if (fail) fail({ errMsg: 'request:fail ' + e.message });
    if (complete) complete({});
  });
  req.end(method === 'GET' ? undefined : body);
  return { abort: () => req.destroy() };
}

let current = null; // the launched app's context

const wx = {
  ...shim.wx,
  connectSocket(opts) {
    const task = shim.wx.connectSocket(opts);
    const send = task.send;
    task.send = (o) => {
      if (!task._ws || task._ws.readyState !== 1) early.sends++;
      return send(o);
    };
    return task;
  },
  request(opts) {
    return opts && opts.data !== undefined ? jsonRequest(opts) : shim.wx.request(opts);
  },
  login({ success, fail } = {}) {
    if (!current || !current.user) return fail && fail({ errMsg: 'login:fail not signed in' });
    const code = 'code' + nextCode++;
    codes.set(code, current.user);
    current.logins++;
    setTimeout(() => success && success({ code, errMsg: 'login:ok' }), 0);
  },
  navigateTo({ url, success } = {}) {
    const [path, q = ''] = url.replace(/^\//, '').split('?');
    const query = Object.fromEntries(q.split('&').filter(Boolean).map((kv) => kv.split('=')));
    const page = current.open(path, query);
    if (success) success({ errMsg: 'navigateTo:ok' });
    return page;
  },
  showToast() {},
};
globalThis.wx = wx;

/** The stand-in login backend: POST {code} answers {token}, an HS256 JWT with
 *  sub = the user the code was issued to, signed with `secret`. */
export async function tokenBackend(t, secret) {
  const seen = [];
  const srv = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      let code;
      try {
        code = JSON.parse(body).code;
      } catch {
        /* no JSON */
      }
      const user = codes.get(code);
      codes.delete(code); // a code is single-use
      seen.push({ method: req.method, code, user });
      if (req.method !== 'POST' || !user) {
        res.writeHead(401, { 'content-type': 'application/json' });
        return res.end(JSON.stringify({ error: 'bad code' }));
      }
      const token = mintToken(secret, { sub: user, exp: Math.floor(Date.now() / 1000) + 600 });
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ token }));
    });
  });
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  t.after(() => new Promise((r) => srv.close(r)));
  return { url: `http://127.0.0.1:${srv.address().port}/token`, seen };
}

function freshModules() {
  for (const k of Object.keys(require.cache)) {
    if (k.startsWith(SAMPLE + '/') && !k.startsWith(SAMPLE + '/lib/') && !k.startsWith(SAMPLE + '/test/')) delete require.cache[k];
  }
}

/** Launches the sample as WeChat would: config (with `config` overrides for
 *  the test), app.js's App(), onLaunch, onShow. Returns {app, open(path,
 *  query), pages, logins}. `user`: who wx.login signs in. */
export function launch(t, { user, config = {} }) {
  freshModules();
  const ctx = { user, logins: 0, pages: [], defs: {}, app: null };
  current = ctx;
  Object.assign(require(resolve(SAMPLE, 'config.js')), config);
  let registered = null;
  globalThis.App = (def) => {
    registered = def;
  };
  globalThis.getApp = () => ctx.app;
  globalThis.Page = (def) => {
    ctx.defs[ctx.loading] = def;
  };
  require(resolve(SAMPLE, 'app.js'));
  if (!registered) throw new Error('app.js did not call App()');
  ctx.app = registered; // WeChat's app instance carries the object's fields and methods
  ctx.open = (path, query = {}) => {
    if (!ctx.defs[path]) {
      ctx.loading = path;
      require(resolve(SAMPLE, path + '.js'));
      if (!ctx.defs[path]) throw new Error(`${path}.js did not call Page()`);
    }
    const page = instantiate(ctx.defs[path], path);
    ctx.pages.push(page);
    page.loaded = page.onLoad ? Promise.resolve(page.onLoad(query)) : Promise.resolve();
    if (page.onShow) page.onShow();
    return page;
  };
  t.after(() => {
    ctx.pages.forEach((p) => p.onUnload && p.onUnload());
    if (ctx.app.sb) ctx.app.sb.close();
    if (current === ctx) current = null;
  });
  ctx.app.onLaunch({ path: 'pages/chat/chat', query: {} });
  ctx.app.onShow({});
  return ctx;
}

function instantiate(def, route) {
  const page = { ...def, route, data: JSON.parse(JSON.stringify(def.data || {})), history: [] };
  const waiters = new Set();
  page.setData = (obj, cb) => {
    // setData takes a copy, as WeChat's does (the view gets JSON).
    Object.assign(page.data, JSON.parse(JSON.stringify(obj)));
    page.history.push({ ...page.data });
    waiters.forEach((w) => w());
    if (cb) cb();
  };
  /** Resolves when pred(page.data) holds (a hang guard only: `ms`). */
  page.until = (pred, ms = 10000, what = String(pred)) =>
    new Promise((res, rej) => {
      const check = () => {
        if (!pred(page.data)) return false;
        waiters.delete(check);
        clearTimeout(guard);
        res(page.data);
        return true;
      };
      const guard = setTimeout(() => {
        waiters.delete(check);
        rej(new Error(`timed out waiting for ${what}; page data: ${JSON.stringify({ ...page.data, messages: page.data.messages.length })}`));
      }, ms);
      if (!check()) waiters.add(check);
    });
  return page;
}
